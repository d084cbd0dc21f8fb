/**
 * A bounded soak on loopback: the Node BFF (its own process, `--expose-gc`) with the Redis store
 * on a private redis-server, the real IdP with short-lived access tokens (so refreshes happen all
 * the time), and a small upstream. Two kinds of load run together:
 * - virtual users, each cycling: log in through the IdP's pages, make API and /bff/user calls with
 *   pauses (long enough for tokens to expire), log out and check the session is gone;
 * - autocannon, hammering the API and /bff/user with long-lived sessions, one per connection.
 * It counts every answer: no 5xx and no lost session (a live session answering 401) are allowed,
 * and the BFF's heap after GC must end where it started, within a tolerance.
 * Used by `npm run soak` (scripts/soak.ts) and, short, by test/outage/soak.test.ts.
 */
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { fork, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp, type Idp } from '../../src/demo/idp.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { startRedisServer, type RedisServer } from '../helpers/redis-server.ts'
import { freePort } from '../helpers/upstream.ts'

export interface SoakOptions {
  /** Seconds of measured load (after a warm-up of a fifth of it, at least 3 s). */
  seconds: number
  /** Virtual users cycling login, calls and logout. @default 6 */
  users?: number
  /** autocannon connections, each with a long-lived session of its own. @default 8 */
  connections?: number
  /** Access token lifetime at the IdP, seconds. @default 4 */
  accessTokenTtl?: number
  /** Progress lines, e.g. console.log. */
  progress?: (line: string) => void
}

export interface Memory {
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
}

export interface SoakReport {
  seconds: number
  /** Answers from the BFF, by status; `network` counts requests that got none. */
  statuses: Record<string, number>
  requests: number
  requestsPerSecond: number
  errors5xx: number
  networkErrors: number
  /** Sessions that should have been alive and answered 401 at least once. */
  lostSessions: number
  /** Logouts whose session still answered afterwards. */
  logoutsNotEffective: number
  logins: number
  logouts: number
  /** Refresh grants the IdP served. */
  refreshes: number
  /** Session keys left in Redis at the end, and how many sessions should be live. */
  redisSessions: { left: number; expected: number }
  memory: { start: Memory; end: Memory; gc: boolean }
  /** warn/error log events of the BFF, by level:event:code. */
  bffLogs: Record<string, number>
}

const SERVER = fileURLToPath(new URL('./soak-server.ts', import.meta.url))
const CSRF = { 'x-csrf': '1' }

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const users = options.users ?? 6
  const connections = options.connections ?? 8
  const accessTokenTtl = options.accessTokenTtl ?? 4
  const progress = options.progress ?? (() => {})
  const warmup = Math.max(3, Math.round(options.seconds / 5))

  const redis: RedisServer = await startRedisServer()
  const idp: Idp = await startIdp({ accessTokenTtl, clients: [] })
  const upstream = await startUpstream()
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  await idp.addClient(bffClientMetadata({ redirectUris: [`${url}/bff/callback`] }))
  const child = await startBff({
    PORT: String(port),
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: url,
    BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
    BFF_SESSION_STORE: 'redis',
    BFF_REDIS_URL: redis.url,
    BFF_API: `/api/=${upstream.url}/`,
    BFF_REFRESH_SKEW: '1',
  })

  const statuses: Record<string, number> = {}
  const lost = new Set<string>()
  let logins = 0
  let logouts = 0
  let logoutsNotEffective = 0
  const count = (status: number | 'network') => {
    statuses[status] = (statuses[status] ?? 0) + 1
  }

  async function send(jar: CookieJar, method: string, path: string, body?: unknown) {
    try {
      const response = await jar.request(method, path, {
        headers: CSRF,
        ...(body === undefined ? {} : { json: body }),
      })
      await response.body?.cancel()
      count(response.status)
      return response.status
    } catch {
      count('network')
      return 0
    }
  }

  async function login(user: string): Promise<CookieJar | undefined> {
    const jar = createCookieJar({ baseUrl: url })
    try {
      const start = await jar.get('/bff/login?returnTo=/')
      count(start.status)
      const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
        login: user,
        password: 'pass',
      })
      const done = await jar.follow(atIdp)
      count(done.status)
      if (done.status !== 302) return undefined
      logins++
      return jar
    } catch {
      count('network')
      return undefined
    }
  }

  /** One virtual user until `until`: login, calls with pauses, logout, again. */
  async function virtualUser(index: number, until: number) {
    for (let cycle = 0; Date.now() < until; cycle++) {
      const name = `soak-u${index}-${cycle % 50}`
      const jar = await login(name)
      if (!jar) continue
      const calls = 10 + Math.floor(Math.random() * 20)
      for (let call = 0; call < calls && Date.now() < until; call++) {
        const pick = Math.random()
        const status =
          pick < 0.5
            ? await send(jar, 'GET', `/api/items?page=${call}`)
            : pick < 0.8
              ? await send(jar, 'POST', '/api/items', { name: `item ${call}`, user: name })
              : await send(jar, 'GET', '/bff/user')
        if (status === 401) lost.add(`user:${name}:${cycle}`)
        // Mostly short pauses; now and then one long enough for the access token to expire.
        const pause = Math.random() < 0.1 ? accessTokenTtl * 1000 : Math.random() * 150
        await sleep(Math.min(pause, Math.max(0, until - Date.now())))
      }
      const out = await send(jar, 'POST', '/bff/logout')
      if (out === 302) logouts++
      if ((await send(jar, 'GET', '/bff/user')) !== 401) logoutsNotEffective++
    }
  }

  // Long-lived sessions for autocannon, one per connection.
  const cookies: string[] = []
  for (let i = 0; i < connections; i++) {
    const jar = await login(`soak-c${i}`)
    if (!jar) throw new Error('the soak could not log in its autocannon sessions')
    cookies.push(`bff=${jar.cookies(url).bff}`)
  }

  let nextConnection = 0
  async function cannon(seconds: number) {
    type Ctx = { session?: number }
    const withSession = (request: autocannon.Request, context: object): autocannon.Request => {
      const ctx = context as Ctx
      ctx.session ??= nextConnection++ % connections
      return { ...request, headers: { ...request.headers, ...CSRF, cookie: cookies[ctx.session] } }
    }
    const onResponse = (status: number, _body: string, context: object) => {
      if (status === 401) lost.add(`cannon:${(context as Ctx).session}`)
    }
    const result = await autocannon({
      url,
      connections,
      duration: seconds,
      timeout: 10,
      requests: [
        { method: 'GET', path: '/api/items', setupRequest: withSession, onResponse },
        {
          method: 'POST',
          path: '/api/items',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'cannon' }),
          setupRequest: withSession,
          onResponse,
        },
        { method: 'GET', path: '/bff/user', setupRequest: withSession, onResponse },
      ],
    })
    for (const [status, { count: n = 0 }] of Object.entries(result.statusCodeStats ?? {})) {
      statuses[status] = (statuses[status] ?? 0) + n
    }
    statuses.network = (statuses.network ?? 0) + result.errors + result.timeouts
  }

  async function phase(seconds: number) {
    const until = Date.now() + seconds * 1000
    await Promise.all([
      cannon(seconds),
      ...Array.from({ length: users }, (_, i) => virtualUser(i, until)),
    ])
  }

  const grantsBefore = idp.grants.refresh
  try {
    progress(`soak: warm-up ${warmup} s, then ${options.seconds} s measured`)
    await phase(warmup)
    const start = await child.memory()
    const startedAt = Date.now()
    await phase(options.seconds)
    const elapsed = (Date.now() - startedAt) / 1000
    await sleep(1000) // in-flight refreshes and grace entries settle
    const end = await child.memory()

    // The autocannon sessions lived through everything: each must still be there.
    for (const [i, cookie] of cookies.entries()) {
      const response = await fetch(`${url}/bff/user`, { headers: { ...CSRF, cookie } })
      await response.body?.cancel()
      if (response.status !== 200) lost.add(`cannon:${i}:final`)
    }
    const left = await countKeys(redis.url, 'bff:session:*')
    const total = Object.values(statuses).reduce((a, b) => a + b, 0)
    return {
      seconds: options.seconds,
      statuses,
      requests: total,
      requestsPerSecond: Math.round(total / (elapsed + warmup)),
      errors5xx: Object.entries(statuses)
        .filter(([status]) => Number(status) >= 500)
        .reduce((a, [, n]) => a + n, 0),
      networkErrors: statuses.network ?? 0,
      lostSessions: lost.size,
      logoutsNotEffective,
      logins,
      logouts,
      refreshes: idp.grants.refresh - grantsBefore,
      redisSessions: { left, expected: connections },
      memory: { start: start.memory, end: end.memory, gc: end.gc },
      bffLogs: Object.fromEntries(Object.entries(end.logs).filter(([key]) => key !== 'info')),
    }
  } finally {
    await child.stop()
    await new Promise((resolve) => upstream.server.close(resolve))
    upstream.server.closeAllConnections()
    await idp.stop()
    await redis.stop()
  }
}

/** Whether a report passes: no 5xx, nothing lost, the heap flat within the tolerance. */
export function soakVerdict(report: SoakReport): string[] {
  const problems: string[] = []
  if (report.errors5xx) problems.push(`${report.errors5xx} answers were 5xx`)
  if (report.networkErrors) problems.push(`${report.networkErrors} requests got no answer`)
  if (report.lostSessions) problems.push(`${report.lostSessions} sessions were lost`)
  if (report.logoutsNotEffective) problems.push(`${report.logoutsNotEffective} logouts failed`)
  if (report.redisSessions.left !== report.redisSessions.expected) {
    problems.push(
      `Redis holds ${report.redisSessions.left} sessions, ${report.redisSessions.expected} expected`
    )
  }
  const { start, end } = report.memory
  // Heap after GC may wobble by a few MB (JIT code, caches); growth beyond that is a leak.
  const allowed = Math.max(8 * MB, start.heapUsed * 0.25)
  if (end.heapUsed - start.heapUsed > allowed) {
    problems.push(`heap grew ${mb(end.heapUsed - start.heapUsed)} (allowed ${mb(allowed)})`)
  }
  return problems
}

export function formatReport(report: SoakReport): string {
  const { start, end } = report.memory
  const statuses = Object.entries(report.statuses)
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ')
  return [
    `soak: ${report.seconds} s measured (+ warm-up)`,
    `  requests  ${report.requests} (${report.requestsPerSecond}/s) — ${statuses}`,
    `  5xx ${report.errors5xx}, no answer ${report.networkErrors}, lost sessions ${report.lostSessions}, failed logouts ${report.logoutsNotEffective}`,
    `  logins ${report.logins}, logouts ${report.logouts}, refresh grants ${report.refreshes}`,
    `  Redis sessions left ${report.redisSessions.left} (expected ${report.redisSessions.expected})`,
    `  BFF memory after GC${report.memory.gc ? '' : ' (no --expose-gc!)'}: heap ${mb(start.heapUsed)} -> ${mb(end.heapUsed)}, rss ${mb(start.rss)} -> ${mb(end.rss)}`,
    `  BFF warnings/errors logged: ${JSON.stringify(report.bffLogs)}`,
  ].join('\n')
}

const MB = 1024 * 1024
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export interface BffChild {
  /** The BFF's process id, to read its memory from outside. */
  pid: number
  memory(): Promise<{ memory: Memory; gc: boolean; logs: Record<string, number> }>
  stop(): Promise<void>
}

/** The BFF in a process of its own (soak-server.ts), from these settings. */
export async function startBff(env: Record<string, string>): Promise<BffChild> {
  const child: ChildProcess = fork(SERVER, [], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { PATH: process.env.PATH ?? '', SOAK_BFF_ENV: JSON.stringify(env) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const next = <T>(key: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (message: Record<string, unknown>) => {
        if (key in message) {
          child.off('message', onMessage)
          resolve(message as T)
        }
      }
      child.on('message', onMessage)
      child.once('exit', (code) => reject(new Error(`the soak BFF exited with ${code}`)))
    })
  await next<{ ready: string }>('ready')
  return {
    pid: child.pid!,
    memory() {
      const answer = next<{ memory: Memory; gc: boolean; logs: Record<string, number> }>('memory')
      child.send('memory')
      return answer
    },
    async stop() {
      if (child.exitCode !== null) return
      child.send('stop')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** An upstream that answers every call with a little JSON and counts nothing: soak-sized. */
async function startUpstream(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      const ok = req.headers.authorization?.startsWith('Bearer ')
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ path: req.url, items: [1, 2, 3] }))
    })
  })
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}

async function countKeys(redisUrl: string, pattern: string): Promise<number> {
  const client = new Redis(redisUrl)
  try {
    let cursor = '0'
    let n = 0
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      cursor = next
      n += keys.length
    } while (cursor !== '0')
    return n
  } finally {
    client.disconnect()
  }
}
