/**
 * `npm run bench`: how much a proxied API call through the BFF costs, against a bare Node proxy.
 *
 * In one run, on loopback only: a small upstream, then a fixed-duration load of 32 connections
 * (autocannon, in this process; every server runs in a child process of its own) against
 *   (a) the upstream directly, (b) a bare `node:http` proxy adding a fixed bearer token (the
 *   practical limit), (c)-(e) the BFF (NODE_ENV=production) proxying an authenticated GET with the
 *   `cookie`, `memory` and `redis` stores, each with a real session from a login through the IdP,
 * interleaved in rounds so that every ratio compares runs made on the same machine (see `loadAll`);
 * then, per store, a refresh storm (200 concurrent calls of one session whose access token has
 * expired: one refresh grant expected), and the memory store's bytes per session for 100k sessions.
 * Prints a table and writes JSON to bench/results/.
 *
 * BENCH_SECONDS (default 20) sets each target's measured load (that many rounds of one second),
 * BENCH_CONNECTIONS (32) the load, BENCH_BFF_SETTINGS (JSON) more settings for every BFF. `--smoke` runs everything briefly (for CI) and
 * fails only when something does not work; `--check` also fails when a target is missed.
 * `--pdp` measures a route's `authorize` instead (bench/pdp.ts). `--tracing` adds (f): the memory
 * store's BFF again with OTLP trace export on (OTEL_EXPORTER_OTLP_ENDPOINT), to a sink on loopback
 * (bench/otlp-sink.ts); (d) is the same BFF with tracing off (W3C propagation only).
 */
import autocannon from 'autocannon'
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp, type Idp } from '../src/demo/idp.ts'
import { createSealer } from '../src/core/session/seal.ts'
import type { Session, SessionRef } from '../src/core/session/types.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../test/helpers/http.ts'
import { loginAtIdp } from '../test/helpers/idp-login.ts'
import { freePort } from '../test/helpers/upstream.ts'
import { startChild, type Child } from './child.ts'

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const SMOKE = process.argv.includes('--smoke')
const CHECK = process.argv.includes('--check')
const TRACING = process.argv.includes('--tracing')
// --only=bare,memory runs a subset (a development aid): direct, bare, cookie, memory, redis.
const ONLY = process.argv
  .find((arg) => arg.startsWith('--only='))
  ?.slice(7)
  .split(',')
const wanted = (run: string) => !ONLY || ONLY.includes(run)
// BENCH_PROFILE=<dir>: the proxies write V8 CPU profiles there (a development aid).
const PROFILE = process.env.BENCH_PROFILE

function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`)
  return value
}
const SECONDS = positive('BENCH_SECONDS', 20)
const CONNECTIONS = positive('BENCH_CONNECTIONS', 32)
const WARMUP_SECONDS = SMOKE ? 1 : Math.min(3, SECONDS)
// Each target's load is spread over rounds of one second each (see `loadAll`).
const ROUNDS = SECONDS
const STORM_CALLS = 200
// The large-download row: this many bytes, chunked, read as fast as they come, in rounds.
const DOWNLOAD_BYTES = (SMOKE ? 8 : 100) * 1024 * 1024
const DOWNLOAD_ROUNDS = SMOKE ? 1 : 5
const MEMORY_SESSIONS = SMOKE ? 10_000 : 100_000
// The load never needs a refresh: 15 minutes, a common production lifetime, is far more than the
// login of each slice of load is used for.
const ACCESS_TOKEN_TTL = 900
const REDIS_URL = 'redis://127.0.0.1:6379'

const TARGETS = { cookie: 0.7, memory: 0.7, redis: 0.6, p99AddedMs: 2 } as const
type StoreKind = 'cookie' | 'memory' | 'redis'
type RunKey = 'direct' | 'bare' | StoreKind | 'traced'
const LETTER: Record<StoreKind, string> = { cookie: 'c', memory: 'd', redis: 'e' }
const CSRF = { 'x-csrf': '1' }
// Marks the calls of (a), so the upstream can tell them from proxied calls that lack a token.
const DIRECT_HEADER = 'x-bench-direct'

interface Run {
  name: string
  requestsPerSecond: number
  p50Ms: number
  p99Ms: number
  p999Ms: number
  requests: number
  /** CPU time the proxy process spent per request (user + system), microseconds. */
  cpuUsPerRequest?: number
  /** Answers other than 2xx, and requests without an answer: both must be 0. */
  non2xx: number
  errors: number
}

interface Storm {
  calls: number
  refreshGrants: number
  statuses: Record<string, number>
  p50Ms: number
  p99Ms: number
  maxMs: number
}

/** One stretch of load on one target: the raw figures, merged later into a `Run`. */
interface Slice {
  requests: number
  seconds: number
  p50Ms: number
  p99Ms: number
  p999Ms: number
  non2xx: number
  errors: number
  cpuMicros: number
}

/** Something the load is aimed at: the upstream, the bare proxy or a BFF. */
interface Target {
  key: RunKey
  name: string
  url: string
  /**
   * Asked before every slice: a BFF target logs in afresh. The BFF slides a session's idle expiry
   * once a minute with a new cookie, which a browser keeps and autocannon cannot; an older
   * cookie would make every call slide (and re-seal) it again, which no real client causes.
   */
  headers: () => Promise<Record<string, string>>
  /** The process under load, for its CPU time. */
  server?: Child
}

/**
 * `seconds` of autocannon on one target, with the target's CPU time. Latency is taken from
 * autocannon's per-response event in microseconds: its own histogram keeps whole milliseconds,
 * too coarse for a 2 ms budget.
 */
async function measure(target: Target, seconds: number): Promise<Slice> {
  const headers = await target.headers()
  let latencies = new Float64Array(1 << 16)
  let n = 0
  const cpuBefore = await target.server?.call<NodeJS.CpuUsage>('cpu')
  const r = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      { url: target.url, connections: CONNECTIONS, timeout: 10, headers, duration: seconds },
      (err, result) => (err ? reject(err) : resolve(result))
    )
    instance.on('response', (_client, _status, _bytes, ms) => {
      if (n === latencies.length) {
        const grown = new Float64Array(n * 2)
        grown.set(latencies)
        latencies = grown
      }
      latencies[n++] = ms
    })
  })
  const cpuAfter = await target.server?.call<NodeJS.CpuUsage>('cpu')
  const sorted = latencies.subarray(0, n).sort()
  const at = (p: number) => sorted[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)] ?? NaN
  return {
    requests: r.requests.total,
    seconds,
    p50Ms: at(50),
    p99Ms: at(99),
    p999Ms: at(99.9),
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    cpuMicros:
      cpuBefore && cpuAfter
        ? cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system
        : NaN,
  }
}

/**
 * The slices of one target as one run: totals, and for latency the median of the slices' own
 * percentiles (the slices of a round ran on the same machine; see `loadAll`).
 */
function merge(name: string, slices: Slice[]): Run {
  const sum = (pick: (s: Slice) => number) => slices.reduce((total, s) => total + pick(s), 0)
  const requests = sum((s) => s.requests)
  const cpu = sum((s) => s.cpuMicros)
  return {
    name,
    requestsPerSecond: Math.round(requests / sum((s) => s.seconds)),
    p50Ms: round(median(slices.map((s) => s.p50Ms)), 3),
    p99Ms: round(median(slices.map((s) => s.p99Ms)), 3),
    p999Ms: round(median(slices.map((s) => s.p999Ms)), 3),
    requests,
    ...(Number.isNaN(cpu) ? {} : { cpuUsPerRequest: round(cpu / requests, 1) }),
    non2xx: sum((s) => s.non2xx),
    errors: sum((s) => s.errors),
  }
}

/**
 * The load: a warm-up of every target (JIT, connection pools, caches; not counted), then ROUNDS
 * rounds that each give every target one second, in an order that rotates. The VM's speed drifts
 * by a third within minutes and jumps within seconds (a fixed CPU loop here took 490 ms, then
 * 375 ms): targets measured one after another would be compared across different machines. Within
 * a round they share nearly the same one, so each ratio is taken per round and the median of the
 * rounds reported, which a few disturbed seconds do not move.
 */
async function loadAll(targets: Target[]): Promise<Map<RunKey, Slice[]>> {
  const slices = new Map<RunKey, Slice[]>(targets.map((t) => [t.key, []]))
  for (const target of targets) await measure(target, WARMUP_SECONDS)
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(i + round) % targets.length]!
      slices.get(target.key)!.push(await measure(target, 1))
    }
  }
  return slices
}

async function login(bffUrl: string, user: string): Promise<CookieJar> {
  const jar = createCookieJar({ baseUrl: bffUrl })
  const start = await jar.get('/bff/login?returnTo=/')
  if (start.status !== 302) throw new Error(`/bff/login answered ${start.status}`)
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, { login: user, password: 'pass' })
  const done = await jar.follow(atIdp)
  if (done.status !== 302) throw new Error(`/bff/callback answered ${done.status}`)
  return jar
}

const cookieHeader = (jar: CookieJar, url: string) =>
  Object.entries(jar.cookies(url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')

/** One GET on a connection of its own; resolves with the status and the time to the last byte. */
function timedGet(url: string, headers: Record<string, string>) {
  return new Promise<{ status: number; ms: number }>((resolve) => {
    const started = performance.now()
    const req = get(url, { headers, agent: false, timeout: 30_000 }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }))
  })
}

/** One large download on a connection of its own: bytes received and MB/s to the last byte. */
function timedDownload(url: string, headers: Record<string, string>) {
  return new Promise<{ status: number; bytes: number; mbPerSecond: number }>((resolve) => {
    const started = performance.now()
    let bytes = 0
    const req = get(url, { headers, agent: false, timeout: 60_000 }, (res) => {
      res.on('data', (chunk: Buffer) => (bytes += chunk.length))
      res.on('end', () => {
        const seconds = (performance.now() - started) / 1000
        resolve({ status: res.statusCode ?? 0, bytes, mbPerSecond: bytes / 1024 / 1024 / seconds })
      })
      res.on('error', () => resolve({ status: 0, bytes, mbPerSecond: 0 }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0, bytes, mbPerSecond: 0 }))
  })
}

/**
 * MB/s of a DOWNLOAD_BYTES chunked answer through each target, in rounds that rotate the order
 * as `loadAll` does; per target, its MB/s in round order.
 */
async function downloadAll(targets: Target[], problems: string[]): Promise<Map<RunKey, number[]>> {
  const speeds = new Map<RunKey, number[]>(targets.map((t) => [t.key, []]))
  for (let round = 0; round < DOWNLOAD_ROUNDS; round++) {
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(i + round) % targets.length]!
      const url = target.url.replace(/\/api\/items$/, `/api/download?size=${DOWNLOAD_BYTES}`)
      const result = await timedDownload(url, await target.headers())
      if (result.status !== 200 || result.bytes !== DOWNLOAD_BYTES) {
        problems.push(`${target.name}: download answered ${result.status}, ${result.bytes} bytes`)
      }
      speeds.get(target.key)!.push(result.mbPerSecond)
    }
  }
  return speeds
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

/** 200 concurrent calls of one session whose access token expired: one grant must serve them all. */
async function refreshStorm(bff: Child, url: string, idp: Idp, user: string): Promise<Storm> {
  const jar = await login(url, user)
  const headers = { ...CSRF, cookie: cookieHeader(jar, url) }
  const warm = await timedGet(`${url}/api/storm`, headers)
  if (warm.status !== 200) throw new Error(`the storm session answered ${warm.status}`)
  // Past the access token's lifetime (and within the idle timeout): every call needs a refresh.
  await bff.call('advance', { seconds: ACCESS_TOKEN_TTL + 1 })
  const before = idp.grants.refresh
  const results = await Promise.all(
    Array.from({ length: STORM_CALLS }, (_, i) => timedGet(`${url}/api/storm/${i}`, headers))
  )
  const grants = idp.grants.refresh - before
  const statuses: Record<string, number> = {}
  for (const { status } of results) statuses[status] = (statuses[status] ?? 0) + 1
  const ms = results.map((r) => r.ms).sort((a, b) => a - b)
  return {
    calls: STORM_CALLS,
    refreshGrants: grants,
    statuses,
    p50Ms: round(percentile(ms, 50)),
    p99Ms: round(percentile(ms, 99)),
    maxMs: round(ms.at(-1)!),
  }
}

async function redisAvailable(): Promise<boolean> {
  const client = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

async function deleteRedisKeys(prefix: string): Promise<number> {
  const client = new Redis(REDIS_URL)
  let deleted = 0
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length) deleted += await client.del(...keys)
    } while (cursor !== '0')
  } finally {
    await client.quit()
  }
  return deleted
}

/** A BFF with one store, running, and what to load it with. */
interface StoreUnderTest {
  store: StoreKind
  bff: Child
  url: string
  target: Target
  secret: string
  /** The cookies of the last login, for the memory measurement. */
  lastJar(): CookieJar | undefined
  stop(): Promise<void>
}

async function startStore(
  store: StoreKind,
  idp: Idp,
  upstream: Child,
  /** `--tracing`: this BFF exports its spans to the sink at this URL. */
  otlpSink?: string
): Promise<StoreUnderTest> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // A client of its own: the BFFs of all stores run at once, each with its own redirect URI.
  const clientId = `bench-${otlpSink ? 'traced' : store}`
  await idp.addClient(
    bffClientMetadata({
      redirectUris: [`${url}/bff/callback`],
      clientId,
      clientSecret: DEMO_BFF_CLIENT.clientSecret,
    })
  )
  const secret = randomBytes(32).toString('base64url')
  const redisPrefix = `bff-bench-${randomBytes(6).toString('hex')}:`
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: '127.0.0.1',
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: url,
    BFF_SESSION_SECRET: secret,
    BFF_SESSION_STORE: store,
    BFF_API: `/api/=${upstream.url}/`,
    ...(store === 'redis' ? { BFF_REDIS_URL: REDIS_URL, BFF_REDIS_PREFIX: redisPrefix } : {}),
    // BENCH_BFF_SETTINGS (JSON): more settings for every BFF, e.g. BFF_METRICS_TOKEN, to measure
    // what a feature costs against a run without it.
    ...(JSON.parse(process.env.BENCH_BFF_SETTINGS ?? '{}') as Record<string, string>),
    ...(otlpSink ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlpSink } : {}),
  }
  const bff = await startChild(here('./bff-server.ts'), {
    env: { NODE_ENV: 'production', BENCH_BFF_ENV: JSON.stringify(env) },
    execArgv: PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] : [],
  })
  let jar: CookieJar | undefined
  let logins = 0
  // A fresh session for each slice of load, checked once.
  const freshSession = async () => {
    jar = await login(url, `${clientId}-${logins++}`)
    const headers = { ...CSRF, cookie: cookieHeader(jar, url) }
    const check = await timedGet(`${url}/api/items`, headers)
    if (check.status !== 200) throw new Error(`the ${store} BFF answered ${check.status}`)
    return headers
  }
  return {
    store,
    bff,
    url,
    secret,
    target: {
      key: otlpSink ? 'traced' : store,
      name: otlpSink ? `(f) BFF, ${store}, traced` : `(${LETTER[store]}) BFF, ${store} store`,
      url: `${url}/api/items`,
      headers: freshSession,
      server: bff,
    },
    lastJar: () => jar,
    async stop() {
      await bff.stop()
      if (store === 'redis') await deleteRedisKeys(redisPrefix)
    },
  }
}

interface StoreResult {
  run: Run
  storm: Storm
  /** warn/error events the BFF logged, by level:event:code. */
  logs: Record<string, number>
  /** The load session as the BFF stores it (cookie store only), for the memory measurement. */
  session?: Session
}

/** After the load: the refresh storm, the logged events and (cookie store) the session itself. */
async function finishStore(under: StoreUnderTest, run: Run, idp: Idp): Promise<StoreResult> {
  const { store, bff, url } = under
  const storm = await refreshStorm(bff, url, idp, `bench-${store}-storm`)
  let session: Session | undefined
  const jar = under.lastJar()
  if (store === 'cookie' && jar) {
    const ref = await createSealer([under.secret]).unseal<SessionRef>(jar.cookies(url).bff!)
    if (ref && 'session' in ref) session = ref.session
  }
  return { run, storm, logs: await bff.call('logs'), session }
}

async function memoryPerSession(session: Session) {
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', here('./memory.ts')],
    {
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'production',
        BENCH_SESSION: JSON.stringify(session),
        BENCH_MEMORY_SESSIONS: String(MEMORY_SESSIONS),
      },
      encoding: 'utf8',
      timeout: 120_000,
    }
  )
  return JSON.parse(out.trim().split('\n').at(-1)!) as {
    sessions: number
    heapBytes: number
    bytesPerSession: number
    sessionJsonBytes: number
  }
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits
const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

async function main() {
  // Everything is bounded: five targets' load with warm-ups, logins, storms and the memory count
  // take well under this; a hang anywhere ends the bench (children exit with their parent).
  const budgetSeconds = (TRACING ? 6 : 5) * (SECONDS + WARMUP_SECONDS + 30 + 2 * ROUNDS) + 180
  setTimeout(() => {
    console.error(`bench: FAILED: still running after ${budgetSeconds} s`)
    process.exit(1)
  }, budgetSeconds * 1000).unref()
  const loadBefore = os.loadavg()
  const startedAt = new Date()
  console.log(
    `bench: ${SECONDS} s per run in ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} after ` +
      `${WARMUP_SECONDS} s warm-up, ${CONNECTIONS} connections, ` +
      `autocannon ${SMOKE ? '(smoke) ' : ''}on ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ` +
      `Node ${process.version}, load average ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`
  )
  const upstream = await startChild(here('./upstream.ts'))
  const idp = await startIdp({ accessTokenTtl: ACCESS_TOKEN_TTL, clients: [] })
  const runs: Partial<Record<RunKey, Run>> = {}
  // Per run, its slices in round order: slice i of every run was measured in round i.
  let slices = new Map<RunKey, Slice[]>()
  let downloads = new Map<RunKey, number[]>()
  const stores: Partial<Record<StoreKind, StoreResult>> = {}
  const problems: string[] = []
  const skipped: string[] = []
  let memory: Awaited<ReturnType<typeof memoryPerSession>> | undefined
  const running: Child[] = []
  const underTest: StoreUnderTest[] = []
  let sink: Child | undefined
  let exported: { exports: number; bytes: number } | undefined
  try {
    const targets: Target[] = []
    if (wanted('direct')) {
      targets.push({
        key: 'direct',
        name: '(a) upstream directly',
        url: `${upstream.url}/api/items`,
        headers: async () => ({ ...CSRF, [DIRECT_HEADER]: '1' }),
      })
    }
    if (wanted('bare')) {
      const bare = await startChild(here('./bare-proxy.ts'), {
        env: { NODE_ENV: 'production', BENCH_UPSTREAM: upstream.url },
        execArgv: PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] : [],
      })
      running.push(bare)
      targets.push({
        key: 'bare',
        name: '(b) bare Node proxy',
        url: `${bare.url}/api/items`,
        headers: async () => CSRF,
        server: bare,
      })
    }
    for (const store of ['cookie', 'memory', 'redis'] as const) {
      if (!wanted(store)) continue
      if (store === 'redis' && !(await redisAvailable())) {
        skipped.push(`(e) BFF, redis store: skipped, no Redis answers at ${REDIS_URL}`)
        continue
      }
      const under = await startStore(store, idp, upstream)
      underTest.push(under)
      targets.push(under.target)
    }
    if (TRACING) {
      sink = await startChild(here('./otlp-sink.ts'))
      running.push(sink)
      const under = await startStore('memory', idp, upstream, sink.url)
      underTest.push(under)
      targets.push(under.target)
    }
    slices = await loadAll(targets)
    downloads = await downloadAll(targets, problems)
    for (const target of targets) {
      const run = merge(target.name, slices.get(target.key)!)
      runs[target.key] = run
      console.log(`  ${run.name}: ${run.requestsPerSecond} req/s`)
    }
    // The other servers stay up, idle, until the end.
    for (const under of underTest) {
      if (under.target.key === 'traced') continue
      stores[under.store] = await finishStore(under, runs[under.store]!, idp)
    }
    if (sink) {
      exported = await sink.call<{ exports: number; bytes: number }>('stats')
      if (!exported.exports) problems.push('the traced BFF exported no spans')
    }
    const template = stores.cookie?.session
    if (template) memory = await memoryPerSession(template)
    // Every call but the direct ones went through a proxy: each must have reached the API with a token.
    const seen = await upstream.call<{ requests: number; bearer: number; direct: number }>('stats')
    const withoutToken = seen.requests - seen.bearer - seen.direct
    if (withoutToken) problems.push(`${withoutToken} proxied calls reached the API without a token`)
  } finally {
    for (const child of running) await child.stop()
    for (const under of underTest) await under.stop()
    await idp.stop()
    await upstream.stop()
  }

  // Verdicts and report.
  // Against (b) in the same round, then the median over the rounds (see `loadAll`).
  const bare = runs.bare
  const perRound = (key: RunKey, of: (mine: Slice, bares: Slice) => number) => {
    const bares = slices.get('bare') ?? []
    return (slices.get(key) ?? []).map((mine, i) => (bares[i] ? of(mine, bares[i]) : NaN))
  }
  const rate = (slice: Slice) => slice.requests / slice.seconds
  const ratios = (key: RunKey) => perRound(key, (mine, b) => rate(mine) / rate(b))
  const addedMs = (key: RunKey) => perRound(key, (mine, b) => mine.p99Ms - b.p99Ms)
  const ratio = (key: RunKey) => round(median(ratios(key)))
  const added = (key: RunKey) => round(median(addedMs(key)))
  for (const run of Object.values(runs)) {
    if (run.non2xx || run.errors) {
      problems.push(`${run.name}: ${run.non2xx} non-2xx answers, ${run.errors} errors`)
    }
  }
  const targets: Record<string, { value: number; target: string; met: boolean }> = {}
  for (const store of ['cookie', 'memory', 'redis'] as const) {
    const result = stores[store]
    if (!result) continue
    if (bare) {
      const r = ratio(store)
      const a = added(store)
      const at = TARGETS[store]
      targets[`(${LETTER[store]})/(b)`] = { value: r, target: `>= ${at}`, met: r >= at }
      targets[`(${LETTER[store]}) p99 added`] = {
        value: a,
        target: `< ${TARGETS.p99AddedMs} ms`,
        met: a < TARGETS.p99AddedMs,
      }
    }
    const { storm } = result
    if (storm.refreshGrants !== 1) {
      problems.push(`${store} storm: ${storm.refreshGrants} refresh grants, 1 expected`)
    }
    if (storm.statuses['200'] !== storm.calls) {
      problems.push(`${store} storm: answers ${JSON.stringify(storm.statuses)}`)
    }
    const errors = Object.keys(result.logs).filter((key) => !key.startsWith('info:'))
    if (errors.length) problems.push(`${store} BFF logged ${errors.join(', ')}`)
  }

  const pad = (s: string | number, n: number) => String(s).padStart(n)
  const ms = (n: number) => n.toFixed(2)
  console.log('')
  console.log(
    `${'run'.padEnd(24)}${pad('req/s', 8)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}` +
      `${pad('CPU µs/req', 12)}${pad('vs (b)', 8)}${pad('rounds', 12)}${pad('p99 added', 12)}` +
      `${pad('rounds', 14)}`
  )
  const range = (values: number[], digits: number) =>
    `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`
  for (const [key, run] of Object.entries(runs) as [RunKey, Run][]) {
    const proxied = key !== 'direct' && key !== 'bare' && bare
    const plus = (n: number) => `${n >= 0 ? '+' : ''}${ms(n)}`
    const columns = proxied
      ? pad(ratio(key).toFixed(2), 8) +
        pad(range(ratios(key), 2), 12) +
        pad(`${plus(added(key))} ms`, 12) +
        pad(range(addedMs(key), 1), 14)
      : ''
    console.log(
      `${run.name.padEnd(24)}${pad(run.requestsPerSecond, 8)}${pad(ms(run.p50Ms), 9)}` +
        `${pad(ms(run.p99Ms), 9)}${pad(run.cpuUsPerRequest ?? '', 12)}${columns}`
    )
  }
  if (bare && ROUNDS > 1) {
    console.log(
      `vs (b) and p99 added: median of ${ROUNDS} rounds, each against (b) in the same round; ` +
        'rounds: lowest–highest'
    )
  }
  for (const line of skipped) console.log(line)
  if (exported) {
    console.log(
      `(f) exported ${exported.exports} OTLP requests, ` +
        `${(exported.bytes / 1024 / 1024).toFixed(1)} MB of spans, to a sink on loopback`
    )
  }
  console.log('')
  for (const [store, result] of Object.entries(stores)) {
    const { storm } = result
    console.log(
      `refresh storm, ${store} store: ${storm.calls} concurrent calls, expired token -> ` +
        `${storm.refreshGrants} refresh grant${storm.refreshGrants === 1 ? '' : 's'}, ` +
        `${storm.statuses['200'] ?? 0} × 200, p50 ${ms(storm.p50Ms)} ms, p99 ${ms(storm.p99Ms)} ms`
    )
  }
  if (memory) {
    console.log(
      `memory store: ${memory.sessions} sessions -> ${memory.bytesPerSession} bytes per session ` +
        `(heap after GC; the session is ${memory.sessionJsonBytes} bytes as JSON)`
    )
  }
  const bareSpeeds = downloads.get('bare') ?? []
  const downloadRatio = (key: RunKey) =>
    round(median((downloads.get(key) ?? []).map((speed, i) => speed / bareSpeeds[i]!)))
  if (downloads.size) {
    console.log(
      `large download, ${DOWNLOAD_BYTES / 1024 / 1024} MB chunked, median of ${DOWNLOAD_ROUNDS} ` +
        `round${DOWNLOAD_ROUNDS === 1 ? '' : 's'}:`
    )
    for (const [key, speeds] of downloads) {
      const vsBare = bareSpeeds.length && key !== 'bare' && key !== 'direct'
      console.log(
        `  ${runs[key]?.name.padEnd(24)}${pad(Math.round(median(speeds)), 6)} MB/s` +
          (vsBare ? `   vs (b) ${downloadRatio(key).toFixed(2)}` : '')
      )
    }
  }
  console.log('')
  for (const [name, t] of Object.entries(targets)) {
    console.log(`target ${name} ${t.target}: ${t.value} ${t.met ? 'met' : 'MISSED'}`)
  }

  const loadAfter = os.loadavg()
  const storeKeys = Object.keys(stores) as StoreKind[]
  const report = {
    startedAt: startedAt.toISOString(),
    smoke: SMOKE,
    machine: {
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model.trim(),
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadAfter,
    },
    settings: {
      seconds: SECONDS,
      warmupSeconds: WARMUP_SECONDS,
      connections: CONNECTIONS,
      rounds: ROUNDS,
      tool: 'autocannon',
      accessTokenTtl: ACCESS_TOKEN_TTL,
    },
    runs,
    // Every slice as measured, by run, in round order.
    slices: Object.fromEntries(
      [...slices].map(([key, list]) => [
        key,
        list.map((slice) => ({
          requestsPerSecond: Math.round(slice.requests / slice.seconds),
          p50Ms: round(slice.p50Ms, 3),
          p99Ms: round(slice.p99Ms, 3),
          cpuUsPerRequest: round(slice.cpuMicros / slice.requests, 1),
        })),
      ])
    ),
    // Medians, then every round's value.
    ratios: Object.fromEntries(storeKeys.map((store) => [store, ratio(store)])),
    p99AddedMs: Object.fromEntries(storeKeys.map((store) => [store, added(store)])),
    rounds: Object.fromEntries(
      storeKeys.map((store) => [
        store,
        {
          ratios: ratios(store).map((r) => round(r)),
          p99AddedMs: addedMs(store).map((a) => round(a)),
        },
      ])
    ),
    tracing: runs.traced
      ? { ratio: ratio('traced'), p99AddedMs: added('traced'), sink: exported }
      : undefined,
    storms: Object.fromEntries(Object.entries(stores).map(([store, r]) => [store, r.storm])),
    bffLogs: Object.fromEntries(Object.entries(stores).map(([store, r]) => [store, r.logs])),
    memory,
    // MB/s of each download, by run, in round order.
    downloads: { bytes: DOWNLOAD_BYTES, mbPerSecond: Object.fromEntries(downloads) },
    targets,
    skipped,
    problems,
  }
  const dir = here('./results')
  mkdirSync(dir, { recursive: true })
  const file = `${dir}/${startedAt.toISOString().replace(/[:.]/g, '-')}${SMOKE ? '-smoke' : ''}.json`
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`)
  console.log(`\nresults: ${file}`)

  for (const problem of problems) console.error(`bench: FAILED: ${problem}`)
  const missed = Object.values(targets).some((t) => !t.met)
  if (problems.length || (CHECK && missed)) process.exit(1)
  process.exit(0)
}

// `--pdp`: the cost of a route's policy decision point instead (bench/pdp.ts).
if (process.argv.includes('--pdp')) await (await import('./pdp.ts')).benchPdp()
else await main()
