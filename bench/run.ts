/**
 * `npm run bench`: how much a proxied API call through the BFF costs, against a bare Node proxy.
 *
 * In one run, on loopback only: a small upstream, then a fixed-duration load of 32 connections
 * (autocannon, in this process; every server runs in a child process of its own) against
 *   (a) the upstream directly, (b) a bare `node:http` proxy adding a fixed bearer token (the
 *   practical limit), (c)-(e) the BFF (NODE_ENV=production) proxying an authenticated GET with the
 *   `cookie`, `memory` and `redis` stores, each with a real session from a login through the IdP,
 *   and (e') the `redis` store on a Redis Cluster of the bench's own (bench/redis-cluster.ts, 3
 *   primaries with a replica each, when redis-server is installed),
 * interleaved in rounds so that every ratio compares runs made on the same machine (see `loadAll`);
 * and (g) Apache httpd with mod_auth_openidc (bench/apache.ts) when Debian's packages are installed;
 * then, per store, a refresh storm (200 concurrent calls of one session whose access token has
 * expired: one refresh grant expected), and the memory store's bytes per session (heap) and the
 * redis store's (a redis-server of its own: bench/redis-memory.ts) for 100k sessions.
 * Then the many-sessions scenario (bench/sessions.ts): 1, 10 000 and 100 000 live sessions per
 * store, and the cost of a session's first call on an instance; and (w) a session's first call on
 * a fresh Cloudflare Workers isolate in workerd, against a bare proxy Worker's
 * (bench/workers-cold.ts; a skipped line where workerd's threads cannot be measured).
 * Prints a table and writes JSON to bench/results/.
 *
 * BENCH_SECONDS (default 20) sets each target's measured load (that many rounds of one second),
 * BENCH_CONNECTIONS (32) the load, BENCH_BFF_SETTINGS (JSON) more settings for every BFF. `--smoke` runs everything briefly (for CI) and
 * fails only when something does not work; `--check` also fails when a target is missed.
 * `--pdp` measures a route's `authorize` instead (bench/pdp.ts). `--tracing` adds (f): the memory
 * store's BFF again with OTLP trace export on (OTEL_EXPORTER_OTLP_ENDPOINT), to a sink on loopback
 * (bench/otlp-sink.ts); (d) is the same BFF with tracing off (W3C propagation only).
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import os from 'node:os'
import { startIdp, type Idp } from '../src/demo/idp.ts'
import type { Session } from '../src/core/session/types.ts'
import { openSessionCookie } from '../test/helpers/session-cookie.ts'
import { startChild, type Child } from './child.ts'
import { apacheInstalled, startApache, type Apache } from './apache.ts'
import { redisClusterInstalled, startBenchCluster, type BenchCluster } from './redis-cluster.ts'
import { redisPerSession, type RedisMemory } from './redis-memory.ts'
import { benchSessions, reportSessions, type SessionsResult } from './sessions.ts'
import {
  benchWorkers,
  reportWorkers,
  workersUnmeasurable,
  type WorkersResult,
} from './workers-cold.ts'
import {
  CONNECTIONS,
  CSRF,
  ROUNDS,
  SECONDS,
  SMOKE,
  WARMUP_SECONDS,
  againstBare,
  loadAll,
  median,
  merge,
  round,
  type Run,
  type Slice,
  type Target,
} from './load.ts'
import {
  ACCESS_TOKEN_TTL,
  LETTER,
  PROFILE,
  REDIS_URL,
  here,
  redisAvailable,
  refreshStorm,
  startStore,
  storeName,
  type Storm,
  type StoreKind,
  type StoreUnderTest,
} from './stores.ts'

const CHECK = process.argv.includes('--check')
const TRACING = process.argv.includes('--tracing')
// --only=bare,memory runs a subset (a development aid): direct, bare, cookie, memory, redis,
// cluster, apache, sessions (the many-sessions scenario, bench/sessions.ts), workers
// (bench/workers-cold.ts).
const ONLY = process.argv
  .find((arg) => arg.startsWith('--only='))
  ?.slice(7)
  .split(',')
const wanted = (run: string) => !ONLY || ONLY.includes(run)
// The large-download row: this many bytes, chunked, read as fast as they come, in rounds.
const DOWNLOAD_BYTES = (SMOKE ? 8 : 100) * 1024 * 1024
const DOWNLOAD_ROUNDS = SMOKE ? 1 : 5
const MEMORY_SESSIONS = SMOKE ? 10_000 : 100_000

// Issue 21's: the hot path close to the bare proxy, and clearly ahead of Apache with
// mod_auth_openidc (like for like: the memory store against its shared-memory session cache).
const TARGETS = {
  cookie: 0.85,
  memory: 0.85,
  redis: 0.75,
  cluster: 0.75,
  p99AddedMs: 1,
  memoryVsApache: 1.2,
} as const
type RunKey = 'direct' | 'bare' | StoreKind | 'traced' | 'apache'
// Marks the calls of (a), so the upstream can tell them from proxied calls that lack a token.
const DIRECT_HEADER = 'x-bench-direct'

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
async function downloadAll(
  targets: Target<RunKey>[],
  problems: string[]
): Promise<Map<RunKey, number[]>> {
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
    const ref = await openSessionCookie(jar.cookies(url).bff!, under.secret)
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

async function main() {
  // Everything is bounded: five targets' load with warm-ups, logins, storms and the memory count
  // take well under this; a hang anywhere ends the bench (children exit with their parent).
  // The many-sessions scenario adds thirteen targets and minting 100 000 sessions per store.
  const budgetSeconds = (TRACING ? 20 : 19) * (SECONDS + WARMUP_SECONDS + 30 + 2 * ROUNDS) + 600
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
  let redisMemory: RedisMemory | undefined
  let sessions: SessionsResult | undefined
  let workers: WorkersResult | undefined
  let apache: Apache | undefined
  const running: Child[] = []
  const underTest: StoreUnderTest[] = []
  let sink: Child | undefined
  let cluster: BenchCluster | undefined
  let exported: { exports: number; bytes: number } | undefined
  try {
    const targets: Target<RunKey>[] = []
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
    const redisUp = await redisAvailable()
    // (e') and the many-sessions scenario's cluster rows share one cluster.
    if (wanted('cluster') || wanted('sessions')) {
      if (redisClusterInstalled()) cluster = await startBenchCluster()
      else skipped.push("(e') BFF, Redis Cluster: skipped, redis-server or redis-cli not installed")
    }
    for (const store of ['cookie', 'memory', 'redis', 'cluster'] as const) {
      if (!wanted(store)) continue
      if (store === 'redis' && !redisUp) {
        skipped.push(`(e) BFF, redis store: skipped, no Redis answers at ${REDIS_URL}`)
        continue
      }
      if (store === 'cluster' && !cluster) continue
      const under = await startStore(store, idp, upstream, undefined, '', {
        clusterSeeds: cluster?.seeds,
      })
      underTest.push(under)
      targets.push(under.target)
    }
    // (g), when Debian's apache2 and libapache2-mod-auth-openidc are installed.
    if (wanted('apache') && apacheInstalled()) {
      apache = await startApache(idp, upstream)
      targets.push({
        key: 'apache',
        name: '(g) Apache, openidc',
        url: `${apache.url}/api/items`,
        headers: apache.headers,
      })
    } else if (wanted('apache')) {
      skipped.push('(g) Apache mod_auth_openidc: skipped, apache2 or the module not installed')
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
    // A redis-server of its own (bench/redis-memory.ts), when the redis store is measured at all.
    if (template && wanted('redis')) redisMemory = await redisPerSession(template, MEMORY_SESSIONS)
    if (wanted('sessions')) {
      const kinds = (['cookie', 'memory', 'redis', 'cluster'] as const).filter(
        (k) => (k !== 'redis' || redisUp) && (k !== 'cluster' || cluster)
      )
      sessions = await benchSessions(idp, upstream, kinds, cluster?.seeds)
      problems.push(...sessions.problems)
    }
    if (wanted('workers')) {
      // Never fails the bench for want of workerd or /proc: says so instead.
      const unmeasurable = workersUnmeasurable()
      if (unmeasurable)
        skipped.push(`(w) first call on a fresh Workers isolate: skipped, ${unmeasurable}`)
      else {
        try {
          workers = await benchWorkers(upstream.url)
          problems.push(...workers.problems)
        } catch (err) {
          skipped.push(
            `(w) first call on a fresh Workers isolate: skipped, ${(err as Error).message.split('\n')[0]}`
          )
        }
      }
    }
    // Every call but the direct ones went through a proxy: each must have reached the API with a token.
    const seen = await upstream.call<{ requests: number; bearer: number; direct: number }>('stats')
    const withoutToken = seen.requests - seen.bearer - seen.direct
    if (withoutToken) problems.push(`${withoutToken} proxied calls reached the API without a token`)
  } finally {
    await apache?.stop()
    for (const child of running) await child.stop()
    for (const under of underTest) await under.stop()
    await cluster?.stop()
    await idp.stop()
    await upstream.stop()
  }

  // Verdicts and report.
  // Against (b) in the same round, then the median over the rounds (see `loadAll`).
  const bare = runs.bare
  const ratios = (key: RunKey) => againstBare(slices.get(key), slices.get('bare')).ratios
  const addedMs = (key: RunKey) => againstBare(slices.get(key), slices.get('bare')).addedMs
  const ratio = (key: RunKey) => round(median(ratios(key)))
  const added = (key: RunKey) => round(median(addedMs(key)))
  for (const run of Object.values(runs)) {
    if (run.non2xx || run.errors) {
      problems.push(`${run.name}: ${run.non2xx} non-2xx answers, ${run.errors} errors`)
    }
  }
  const targets: Record<string, { value: number; target: string; met: boolean }> = {}
  for (const store of ['cookie', 'memory', 'redis', 'cluster'] as const) {
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
    if (runs.apache) {
      const vs = round(median(againstBare(slices.get(store), slices.get('apache')).ratios))
      const at = store === 'memory' ? TARGETS.memoryVsApache : undefined
      targets[`(${LETTER[store]})/(g)`] = {
        value: vs,
        target: at ? `>= ${at}` : '(no target)',
        met: at ? vs >= at : true,
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
      `refresh storm, ${storeName(store as StoreKind)}: ${storm.calls} concurrent calls, expired token -> ` +
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
  if (redisMemory) {
    const { keyBytes } = redisMemory
    console.log(
      `redis store: ${redisMemory.sessions} sessions -> ${redisMemory.bytesPerSession} bytes per ` +
        `session (used_memory); MEMORY USAGE of one session's keys ${keyBytes.total} bytes ` +
        `(session ${keyBytes.session}, sid index ${keyBytes.sid}, sub index ${keyBytes.sub})`
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
  if (sessions) Object.assign(targets, reportSessions(sessions))
  if (workers) Object.assign(targets, reportWorkers(workers))
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
    redisMemory,
    sessions,
    workers,
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
