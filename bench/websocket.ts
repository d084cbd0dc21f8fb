/**
 * The cost of an idle WebSocket through the BFF on Node: BENCH_SOCKETS sockets (default 10 000),
 * each of its own logged-in session (the `cookie` store, so no store grows with them), opened
 * through a `websocket` route to an echo upstream and left idle; the BFF's memory after full GCs,
 * before and after, divided by the count. The BFF runs as `npm start` runs it (bench/bff-server.ts,
 * NODE_ENV=production), the upstream in a process of its own (bench/ws-upstream.ts).
 *
 * The sessions: one real login through the IdP, then copies of its session (new ids, subjects and
 * tokens of the same lengths) sealed with the BFF's secret, as the cookie of a browser that had
 * logged in. Each relayed socket holds two connections in the BFF (browser and upstream), so the BFF
 * needs about 2 file descriptors per socket: the bench raises its limit with `prlimit` when it can.
 *
 *   npx tsx bench/websocket.ts          # prints one JSON line, then the figures per socket
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { WebSocket } from 'ws'
import { CHUNK_SIZE } from '../src/core/session/cookie.ts'
import { packRef } from '../src/core/session/packed-session.ts'
import { createSealer } from '../src/core/session/seal.ts'
import type { Session } from '../src/core/session/types.ts'
import { openSessionCookie } from '../test/helpers/session-cookie.ts'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp } from '../src/demo/idp.ts'
import { createCookieJar, redirectLocation } from '../test/helpers/http.ts'
import { loginAtIdp } from '../test/helpers/idp-login.ts'
import { freePort } from '../test/helpers/upstream.ts'
import { startChild, type Child } from './child.ts'

const BATCH = 200
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))

// Two descriptors per socket in the BFF: more than a usual limit allows. Without the right to
// raise it (a container's hard limit), as many sockets as fit, leaving 100 descriptors spare.
let limit: number
try {
  execFileSync('prlimit', ['--pid', String(process.pid), '--nofile=65536:65536'], {
    stdio: 'ignore',
  })
  limit = 65536
} catch {
  limit = Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || 1024
}
const fit = Math.floor((limit - 100) / 2 / 100) * 100
const SOCKETS = Math.min(Number(process.env.BENCH_SOCKETS ?? 10_000), fit)
if (SOCKETS < Number(process.env.BENCH_SOCKETS ?? 10_000)) {
  console.warn(`file descriptors limited to ${limit}: measuring ${SOCKETS} sockets`)
}

const port = await freePort()
const url = `http://127.0.0.1:${port}`
const idp = await startIdp({
  accessTokenTtl: 3600,
  clients: [bffClientMetadata({ redirectUris: [`${url}/bff/callback/corp`] })],
})
const children: Child[] = []
const dir = await mkdtemp(path.join(tmpdir(), 'bff-bench-ws-'))
const sockets: WebSocket[] = []
try {
  const upstream = await startChild(here('./ws-upstream.ts'))
  children.push(upstream)
  const config = path.join(dir, 'bff.json')
  await writeFile(
    config,
    JSON.stringify({
      idps: {
        corp: {
          issuer: idp.issuer,
          clientId: DEMO_BFF_CLIENT.clientId,
          clientSecret: DEMO_BFF_CLIENT.clientSecret,
        },
      },
      routes: [{ prefix: '/live/', upstream: `${upstream.url}/ws/`, websocket: true }],
    })
  )
  const secret = randomBytes(32).toString('base64url')
  const env = {
    PORT: String(port),
    HOST: '127.0.0.1',
    BFF_CONFIG: config,
    BFF_BASE_URL: url,
    BFF_SESSION_SECRET: secret,
    BFF_SESSION_STORE: 'cookie',
  }
  const bff = await startChild(here('./bff-server.ts'), {
    env: { NODE_ENV: 'production', BENCH_BFF_ENV: JSON.stringify(env) },
    execArgv: ['--expose-gc'],
  })
  children.push(bff)

  const template = await loggedInSession(secret)
  const sealer = createSealer([secret])
  const cookieOf = async (i: number) => {
    const session = copyOf(template, i)
    // Packed, as the BFF's own login writes it.
    const sealed = await sealer.seal(packRef({ session }), 3600)
    const chunks = []
    for (let n = 0; n * CHUNK_SIZE < sealed.length; n++) {
      chunks.push(`${n ? `bff.${n}` : 'bff'}=${sealed.slice(n * CHUNK_SIZE, (n + 1) * CHUNK_SIZE)}`)
    }
    return chunks.join('; ')
  }
  const open = (cookie: string) =>
    new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/live/echo`, {
        headers: { origin: url, cookie },
        perMessageDeflate: false,
      })
      ws.once('open', () => resolve(ws))
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused: ${res.statusCode}`)))
      ws.once('error', reject)
    })
  const echo = (ws: WebSocket) =>
    new Promise<void>((resolve) => {
      ws.once('message', () => resolve())
      ws.send('ping')
    })

  // Warm-up: every code path run (and compiled) before the baseline is taken.
  const warm = await Promise.all(
    Array.from({ length: BATCH }, async (_, i) => open(await cookieOf(i)))
  )
  await Promise.all(warm.map(echo))
  for (const ws of warm) ws.close()
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const before = await bff.call<NodeJS.MemoryUsage>('memory')

  const started = performance.now()
  for (let i = 0; i < SOCKETS; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, SOCKETS - i) }, (_, j) => i + j + BATCH)
    sockets.push(...(await Promise.all(batch.map(async (n) => open(await cookieOf(n))))))
  }
  const openMs = performance.now() - started
  // Every socket relays: one message each way on a sample.
  await Promise.all(sockets.filter((_, i) => i % 100 === 0).map(echo))
  await new Promise((resolve) => setTimeout(resolve, 2000))
  const after = await bff.call<NodeJS.MemoryUsage>('memory')
  const upstreamOpen = await upstream.call<number>('open')

  const per = (key: keyof NodeJS.MemoryUsage) => Math.round((after[key] - before[key]) / SOCKETS)
  const result = {
    sockets: SOCKETS,
    upstreamOpen,
    openSeconds: Number((openMs / 1000).toFixed(1)),
    bytesPerSocket: {
      rss: per('rss'),
      heapUsed: per('heapUsed'),
      external: per('external'),
      arrayBuffers: per('arrayBuffers'),
    },
    before: { rss: before.rss, heapUsed: before.heapUsed },
    after: { rss: after.rss, heapUsed: after.heapUsed },
    node: process.version,
  }
  console.log(JSON.stringify(result))
  const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`
  console.log(
    `${SOCKETS} idle sockets (${upstreamOpen} upstream) opened in ${result.openSeconds} s: ` +
      `${kb(result.bytesPerSocket.rss)} RSS, ${kb(result.bytesPerSocket.heapUsed)} heap, ` +
      `${kb(result.bytesPerSocket.external)} external per socket`
  )
} finally {
  for (const ws of sockets) ws.terminate()
  for (const child of children.reverse()) await child.stop()
  await idp.stop()
  await rm(dir, { recursive: true, force: true })
}

/** The session of one real login, as the BFF sealed it in the cookie. */
async function loggedInSession(secret: string): Promise<Session> {
  const jar = createCookieJar({ baseUrl: url })
  const start = await jar.get('/bff/login?returnTo=/')
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
    login: 'bench',
    password: 'pass',
  })
  const done = await jar.follow(atIdp)
  if (done.status !== 302) throw new Error(`/bff/callback answered ${done.status}`)
  const cookies = jar.cookies(url)
  let sealed = cookies.bff!
  for (let i = 1; cookies[`bff.${i}`]; i++) sealed += cookies[`bff.${i}`]
  const ref = await openSessionCookie(sealed, secret)
  if (ref && 'session' in ref) return ref.session
  throw new Error('the login left no cookie session')
}

/** The template with new ids, subject and tokens of the same lengths: another user's session. */
function copyOf(template: Session, i: number): Session {
  const random = (like: string | undefined) =>
    like === undefined
      ? undefined
      : randomBytes(like.length).toString('base64url').slice(0, like.length)
  const now = Math.floor(Date.now() / 1000)
  const sub = `ws-${i}`
  return {
    ...template,
    id: random(template.id)!,
    sid: random(template.sid)!,
    sub,
    claims: { ...template.claims, sub, email: `${sub}@example.com` },
    accessToken: random(template.accessToken)!,
    refreshToken: random(template.refreshToken),
    idToken: random(template.idToken),
    accessTokenExpiresAt: now + 3600,
    createdAt: now,
    expiresAt: now + 3600,
    absoluteExpiresAt: now + 3600,
  }
}
