/**
 * Redis outages with the `redis` store, and in `cookie` mode with its revocation list and
 * generation ledger in Redis (BFF_REDIS_URL): the BFF fails closed (503 `store_unavailable`,
 * never 401, never 200), says so on /bff/health, and the same sessions work again once Redis is
 * back, with no new login. The BFF runs through startNode with its own ioredis settings, against a private
 * redis-server on a free port (the shared one on 6379 is never touched).
 *
 * How Redis "goes away" while keeping its data (it runs without persistence):
 * - unreachable: a TCP gate between the BFF and Redis resets every connection and refuses new
 *   ones, as a restart with persistence, a failover or a firewall would; Redis itself keeps running.
 * - hung: the redis-server process is frozen with SIGSTOP (connections stay open, nothing answers,
 *   as in a network partition without resets) and thawed with SIGCONT.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp, type Idp } from '../../src/demo/idp.ts'
import { TRUST_MS } from '../../src/adapters/node/redis-cache.ts'
import { startNode, type NodeServer } from '../../src/adapters/node/server.ts'
import { captureLog } from '../helpers/capture-log.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.ts'
import { startTcpGate, type TcpGate } from '../helpers/tcp-gate.ts'
import { freePort, startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

const CSRF = { 'x-csrf': '1' }
/** Longest a request may take while Redis is away: failing closed must also fail fast. */
const ANSWER_WITHIN_MS = 5000

let redis: RedisServer
let gate: TcpGate
let idp: Idp
let upstream: RecordingUpstream
let bff: NodeServer
const redirectUris: string[] = []
const logs = captureLog()

beforeAll(async () => {
  redis = await startRedisServer()
  gate = await startTcpGate(redis.port)
  idp = await startIdp({ accessTokenTtl: 3600, clients: [] })
  upstream = await startRecordingUpstream()
}, 30_000)

afterAll(async () => {
  await gate?.dispose()
  await redis?.stop()
  await upstream?.close()
  await idp?.stop()
})

/** A BFF whose Redis is behind the gate: the `redis` store, or `cookie` mode sharing lists in it. */
async function startBff(store: 'redis' | 'cookie'): Promise<NodeServer> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  redirectUris.push(`${url}/bff/callback`)
  await idp.addClient(bffClientMetadata({ redirectUris }))
  return startNode(
    {
      PORT: String(port),
      BFF_ISSUER: idp.issuer,
      BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
      BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
      BFF_BASE_URL: url,
      BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
      BFF_SESSION_STORE: store,
      BFF_REDIS_URL: `redis://127.0.0.1:${gate.port}`,
      BFF_REDIS_PREFIX: `${store}:`,
      BFF_API: `/api/=${upstream.url}/`,
    },
    { serveStatic: false, deps: { log: logs.log } }
  )
}

async function login(user: string): Promise<CookieJar> {
  const jar = createCookieJar({ baseUrl: bff.url })
  const start = await jar.get('/bff/login?returnTo=/')
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, { login: user, password: 'pass' })
  const done = await jar.follow(atIdp)
  expect(done.status).toBe(302)
  return jar
}

/** A request that must answer in time; a hang fails the test instead of stalling it. */
function timed(jar: CookieJar, method: string, path: string, headers: Record<string, string> = {}) {
  return Promise.race([
    jar.request(method, path, { headers }),
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`${method} ${path} did not answer in ${ANSWER_WITHIN_MS} ms`)),
        ANSWER_WITHIN_MS
      )
    ),
  ])
}

async function health(): Promise<number> {
  const response = await fetch(`${bff.url}/bff/health`, { signal: AbortSignal.timeout(5000) })
  await response.body?.cancel()
  return response.status
}

async function until(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** While Redis is away: every session request fails closed, fast, and leaves the cookie alone. */
async function expectFailsClosed(jars: CookieJar[]) {
  for (const jar of jars) {
    const cookieBefore = jar.cookies(bff.url).bff
    for (const [method, path] of [
      ['GET', '/api/orders'],
      ['POST', '/api/orders'],
      ['GET', '/bff/user'],
    ] as const) {
      const response = await timed(jar, method, path, CSRF)
      expect(response.status, `${method} ${path}`).toBe(503)
      expect(await response.json()).toMatchObject({ error: 'store_unavailable' })
      expect(jar.lastSetCookies, 'the session cookie is left alone').toEqual([])
    }
    // A logout cannot be completed either: it fails, and the session is not dropped halfway.
    const logout = await timed(jar, 'POST', '/bff/logout', CSRF)
    expect(logout.status).toBe(503)
    expect(jar.cookies(bff.url).bff).toBe(cookieBefore)
  }
  const unhealthy = await fetch(`${bff.url}/bff/health`, { signal: AbortSignal.timeout(5000) })
  expect(unhealthy.status).toBe(503)
  expect(await unhealthy.json()).toEqual({
    status: 'unavailable',
    store: bff.config.sessionStore,
    idp: 'ok',
    idps: [{ name: 'default', status: 'ok' }],
    error: 'store_unavailable',
    message: 'The session store is unavailable.',
  })
}

async function expectWorks(jars: CookieJar[]) {
  for (const jar of jars) {
    const user = await timed(jar, 'GET', '/bff/user', CSRF)
    expect(user.status).toBe(200)
    const api = await timed(jar, 'GET', '/api/orders', CSRF)
    expect(api.status).toBe(200)
  }
}

describe.each(['redis', 'cookie'] as const)('the %s store', (store) => {
  beforeAll(async () => {
    bff = await startBff(store)
  })
  afterAll(() => bff?.close())

  it('Redis unreachable (connections reset, port refused): 503, then the same sessions work again without a login', async () => {
    const jars = [await login('outage-ann'), await login('outage-bob')]
    await expectWorks(jars)
    const upstreamBefore = upstream.requests.length

    await gate.close()
    // The BFF runs in this process: let it read the resets (its session cache stops at once).
    await new Promise((resolve) => setTimeout(resolve, 100))
    await expectFailsClosed(jars)
    // A login cannot finish either: the callback answers a readable 503 page and sets no session.
    const newcomer = createCookieJar({ baseUrl: bff.url })
    const start = await newcomer.get('/bff/login?returnTo=/')
    const atIdp = await loginAtIdp(newcomer, redirectLocation(start)!, {
      login: 'outage-carl',
      password: 'pass',
    })
    const callback = await newcomer.get(redirectLocation(atIdp)!, {
      headers: { accept: 'text/html' },
    })
    expect(callback.status).toBe(503)
    expect(callback.headers.get('content-type')).toMatch(/^text\/html/)
    expect(newcomer.lastSetCookies.some((line) => /^bff=[^;]+/.test(line))).toBe(false)
    expect(upstream.requests.length).toBe(upstreamBefore) // nothing was proxied meanwhile

    await gate.open()
    await until(async () => (await health()) === 200)
    await expectWorks(jars)
    // The refused logouts did not happen: each session is still whole and can log out now.
    const logout = await jars[0]!.post('/bff/logout', { headers: CSRF })
    expect(logout.status).toBe(302)
    expect((await jars[0]!.get('/bff/user', { headers: CSRF })).status).toBe(401)
  }, 60_000)

  it('Redis hung (process frozen, connections open): 503 in bounded time, then the same sessions work again', async () => {
    const jars = [await login('hung-dora')]
    await expectWorks(jars)

    redis.pause()
    try {
      // Nothing can change in a frozen Redis, so sessions read before stay true: the redis store's
      // cache may answer them until its heartbeat has gone unanswered for TRUST_MS.
      await new Promise((resolve) => setTimeout(resolve, TRUST_MS + 300))
      await expectFailsClosed(jars)
    } finally {
      redis.resume()
    }
    await until(async () => (await health()) === 200)
    await expectWorks(jars)
  }, 60_000)
})
