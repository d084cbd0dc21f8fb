/**
 * `npm run bench:soak`: memory at scale over time. Per store (`memory`, `redis`), a BFF run as in
 * production (`startNode`, NODE_ENV=production, built as the bench runs it: bff-server.ts) holds
 * SOAK_SESSIONS (100 000) live sessions under steady load for SOAK_SECONDS (600) after a warm-up
 * of SOAK_WARMUP_SECONDS (60), with refreshes and logouts all the while (soak-load.ts):
 * - SOAK_REAL_SESSIONS (100) of them are real logins through the IdP (oidc-provider,
 *   src/demo/idp.ts) whose access tokens last SOAK_ACCESS_TOKEN_TTL (30) seconds, so they refresh
 *   through it; the rest are minted from one login (clone.ts, mint.ts) with access tokens that
 *   outlast the soak;
 * - SOAK_RATE (1000) calls a second, 5 % of them to the real logins, well below what the two
 *   cores can serve, so the figures are about memory rather than a saturated machine;
 * - SOAK_LOGOUTS (5) logouts a second, each replaced by a new session, so the population holds;
 * - every answer checked: a live session never 401 (a lost session), a logged-out one always 401;
 *   at the end every live session is called once more.
 * Every SOAK_SAMPLE_SECONDS (30) the BFF's heap after two full GCs (the child runs with
 * --expose-gc) and, for `redis`, Redis's used_memory; the verdict compares the first sample after
 * the warm-up with the last. Redis is a redis-server of its own on a free port, empty and without
 * persistence. SOAK_STORES (memory,redis) picks stores. Not part of `npm test`. Prints the series
 * and a verdict per store, writes JSON to bench/results/, and exits 1 when a session was lost, a
 * logout failed or a heap grew by more than max(8 MiB, 5 %).
 */
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp } from '../src/demo/idp.ts'
import { startRedisServer, type RedisServer } from '../test/helpers/redis-server.ts'
import { freePort } from '../test/helpers/upstream.ts'
import { builtEntry } from './built.ts'
import { startChild } from './child.ts'
import { applySetCookie, sessionCookieValue } from './cookies.ts'
import { positive } from './load.ts'
import { soakLoad, type SoakCounts } from './soak-load.ts'
import { cookieHeader, here, login } from './stores.ts'

const SECONDS = positive('SOAK_SECONDS', 600)
const WARMUP = positive('SOAK_WARMUP_SECONDS', 60)
const SESSIONS = positive('SOAK_SESSIONS', 100_000)
// The demo IdP keeps at most 1 000 objects (oidc-provider's memory adapter is an LRU of that
// size): many more real logins, each with its grant, tokens and refreshes, would see their grants
// evicted at the IdP and their refreshes refused, which is no fault of the BFF's.
const REAL = positive('SOAK_REAL_SESSIONS', 100)
const RATE = positive('SOAK_RATE', 1000)
const LOGOUTS = positive('SOAK_LOGOUTS', 5)
const SAMPLE = positive('SOAK_SAMPLE_SECONDS', 30)
const ACCESS_TOKEN_TTL = positive('SOAK_ACCESS_TOKEN_TTL', 30)
const STORES = (process.env.SOAK_STORES ?? 'memory,redis').split(',') as ('memory' | 'redis')[]
// Minted sessions' access tokens: longer than any soak, so they never ask the IdP.
const MINTED_TOKEN_TTL = 7 * 24 * 3600
const MiB = 1024 * 1024
const SNAPSHOTS = process.env.SOAK_HEAP_SNAPSHOTS

interface Sample {
  seconds: number
  heapUsed: number
  rss: number
  external: number
  redisUsedMemory?: number
  /** INFO memory's parts and the key count, for telling what grew. */
  redis?: { keys: number; dataset: number; overhead: number; clients: number }
  liveSessions: number
  calls: number
  refreshes: number
  loadAverage: number
}

async function soakStore(store: 'memory' | 'redis') {
  const redis: RedisServer | undefined = store === 'redis' ? await startRedisServer() : undefined
  const redisClient = redis ? new Redis(redis.url) : undefined
  const idp = await startIdp({ accessTokenTtl: ACCESS_TOKEN_TTL, clients: [] })
  const upstream = await startChild(here('./upstream.ts'))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const clientId = `soak-${store}`
  await idp.addClient(
    bffClientMetadata({
      redirectUris: [`${url}/bff/callback`],
      clientId,
      clientSecret: DEMO_BFF_CLIENT.clientSecret,
    })
  )
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: '127.0.0.1',
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: url,
    BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
    BFF_SESSION_STORE: store,
    BFF_API: `/api/=${upstream.url}/`,
    ...(redis ? { BFF_REDIS_URL: redis.url, BFF_REDIS_PREFIX: 'bff:' } : {}),
  }
  const bff = await startChild(await builtEntry(here('./bff-server.ts')), {
    env: { NODE_ENV: 'production', BENCH_BFF_ENV: JSON.stringify(env) },
    execArgv: ['--expose-gc'],
  })
  const samples: Sample[] = []
  try {
    let logins = 0
    const realLogin = async () => cookieHeader(await login(url, `soak-${store}-${logins++}`), url)
    // The template of every minted session: one minted from a login of its own, never logged
    // out, kept alive; minted itself, it never asks the IdP for a refresh.
    const login0 = await realLogin()
    const [first] = await bff.call<string[]>('mint', {
      cookie: sessionCookieValue(login0),
      count: 1,
      from: -1,
      accessTokenTtl: MINTED_TOKEN_TTL,
    })
    let template = first!
    const real: string[] = []
    for (let i = 0; i < REAL; i += 10) {
      real.push(...(await Promise.all(Array.from({ length: Math.min(10, REAL - i) }, realLogin))))
    }
    let users = 0
    const mint = (count: number) => {
      users += count
      return bff.call<string[]>('mint', {
        cookie: sessionCookieValue(template),
        count,
        from: users - count,
        accessTokenTtl: MINTED_TOKEN_TTL,
      })
    }
    const started = performance.now()
    const minted: string[] = []
    for (let n = 0; n < SESSIONS - REAL; n += 10_000) {
      minted.push(...(await mint(Math.min(10_000, SESSIONS - REAL - n))))
    }
    console.log(
      `soak ${store}: ${REAL} real logins and ${minted.length} minted sessions in ` +
        `${((performance.now() - started) / 1000).toFixed(0)} s; ${WARMUP} s warm-up, then ` +
        `${SECONDS} s at ${RATE} calls/s, ${LOGOUTS} logouts/s`
    )
    const load = soakLoad({
      url,
      rate: RATE,
      realShare: 0.05,
      logoutsPerSecond: LOGOUTS,
      loggedOutShare: 0.01,
      real,
      minted,
      mint,
      login: realLogin,
    })
    const refreshesBefore = idp.grants.refresh
    const loadStarted = performance.now()
    const sample = async () => {
      const memory = await bff.call<NodeJS.MemoryUsage>('memory')
      const info = redisClient ? await redisClient.info('memory') : ''
      const used = /^used_memory:(\d+)/m.exec(info)?.[1]
      const s: Sample = {
        seconds: Math.round((performance.now() - loadStarted) / 1000),
        heapUsed: memory.heapUsed,
        rss: memory.rss,
        external: memory.external,
        ...(used ? { redisUsedMemory: Number(used) } : {}),
        ...(redisClient
          ? {
              redis: {
                keys: await redisClient.dbsize(),
                dataset: infoField(info, 'used_memory_dataset'),
                overhead: infoField(info, 'used_memory_overhead'),
                clients: infoField(info, 'mem_clients_normal'),
              },
            }
          : {}),
        liveSessions: load.live(),
        calls: load.counts.calls,
        refreshes: idp.grants.refresh - refreshesBefore,
        loadAverage: os.loadavg()[0]!,
      }
      samples.push(s)
      console.log(
        `  ${String(s.seconds).padStart(5)} s  heap ${mib(s.heapUsed)}  rss ${mib(s.rss)}` +
          (s.redisUsedMemory ? `  redis ${mib(s.redisUsedMemory)}` : '') +
          `  live ${s.liveSessions}  calls ${s.calls}  refreshes ${s.refreshes}  ` +
          `lost ${load.counts.lostSessions}  logouts ${load.counts.logouts}  ` +
          `load ${s.loadAverage.toFixed(2)}`
      )
    }
    await sample()
    load.start()
    const end = loadStarted + (WARMUP + SECONDS) * 1000
    // Samples at the warm-up's end and every SAMPLE seconds after it, the last at the very end.
    for (let at = WARMUP; at <= WARMUP + SECONDS; at += SAMPLE) {
      await sleep(loadStarted + at * 1000 - performance.now())
      await sample()
      // SOAK_HEAP_SNAPSHOTS=<dir>: the BFF's heap at the warm-up's end and at the end, to compare.
      if (SNAPSHOTS && (at === WARMUP || at + SAMPLE > WARMUP + SECONDS)) {
        await bff.call('heapSnapshot', { file: `${SNAPSHOTS}/soak-${store}-${at}s.heapsnapshot` })
      }
      // The template session stays alive (its idle timeout) for mints of long soaks.
      const { setCookie } = await fetchUser(url, template)
      template = applySetCookie(template, setCookie)
    }
    if (performance.now() < end) await sleep(end - performance.now())
    await load.stop()
    const counts: SoakCounts = structuredClone(load.counts)
    const sweep = await load.sweep()
    // DBSIZE counts keys that expired but that Redis has not yet reclaimed; SCAN reclaims those
    // it meets, so the count before and after it tells them apart from live keys.
    const dbsizeBefore = redisClient ? await redisClient.dbsize() : undefined
    const census = redisClient ? await keyCensus(redisClient) : undefined
    const dbsizeAfter = redisClient ? await redisClient.dbsize() : undefined
    const keys = census?.session
    await load.close()
    const logs = await bff.call<Record<string, number>>('logs')
    const reasons = await bff.call<Record<string, string[]>>('reasons')
    return {
      store,
      samples,
      counts,
      sweep,
      redisSessionKeys: keys,
      redisKeys: census,
      redisDbsize: redisClient ? { beforeScan: dbsizeBefore, afterScan: dbsizeAfter } : undefined,
      live: load.live(),
      logs,
      reasons,
    }
  } finally {
    await bff.stop()
    await upstream.stop()
    await idp.stop()
    redisClient?.disconnect()
    await redis?.stop()
  }
}

type Result = Awaited<ReturnType<typeof soakStore>>

/** Growth from the first sample after the warm-up to the last, in bytes and percent. */
function growth(samples: Sample[], pick: (s: Sample) => number | undefined) {
  const measured = samples.filter((s) => s.seconds >= WARMUP)
  const first = pick(measured[0]!)
  const last = pick(measured.at(-1)!)
  if (first === undefined || last === undefined) return undefined
  const values = measured.map((s) => pick(s)!)
  return {
    first,
    last,
    bytes: last - first,
    percent: Math.round(((last - first) / first) * 1000) / 10,
    min: Math.min(...values),
    max: Math.max(...values),
  }
}

function verdict(result: Result): string[] {
  const problems: string[] = []
  const { counts, sweep } = result
  if (counts.lostSessions) {
    problems.push(
      `${counts.lostSessions} sessions lost, ${counts.lostReal} of them real logins ` +
        `(${counts.lostCalls} calls answered 401)`
    )
  }
  const sweepNotOk = Object.values(sweep.notOk).reduce((a, b) => a + b, 0)
  if (sweepNotOk) problems.push(`final sweep: ${JSON.stringify(sweep.notOk)}`)
  if (counts.revived) problems.push(`${counts.revived} calls of logged-out sessions not 401`)
  if (counts.failedLogouts) problems.push(`${counts.failedLogouts} logouts failed`)
  if (counts.failedLogins) problems.push(`${counts.failedLogins} replacement logins failed`)
  const errors = Object.entries(counts.statuses).filter(
    ([status]) => !/^(200|302|401)$/.test(status)
  )
  if (errors.length)
    problems.push(`unexpected answers ${JSON.stringify(Object.fromEntries(errors))}`)
  // The live population, the template's login and the template.
  if (result.redisSessionKeys !== undefined && result.redisSessionKeys !== result.live + 2) {
    problems.push(`Redis holds ${result.redisSessionKeys} sessions, ${result.live} live + 2`)
  }
  const heap = growth(result.samples, (s) => s.heapUsed)!
  if (heap.bytes > Math.max(8 * MiB, heap.first * 0.05)) {
    problems.push(`heap grew ${mib(heap.bytes)} (${heap.percent} %)`)
  }
  return problems
}

function report(result: Result, problems: string[]) {
  const { counts, sweep } = result
  const heap = growth(result.samples, (s) => s.heapUsed)!
  const rss = growth(result.samples, (s) => s.rss)!
  const redis = growth(result.samples, (s) => s.redisUsedMemory)
  const signed = (g: NonNullable<typeof heap>) =>
    `${mib(g.first)} -> ${mib(g.last)} (${g.bytes >= 0 ? '+' : ''}${(g.bytes / MiB).toFixed(1)} MiB, ` +
    `${g.percent >= 0 ? '+' : ''}${g.percent} %; min ${mib(g.min)}, max ${mib(g.max)})`
  const loads = result.samples.map((s) => s.loadAverage)
  console.log(`soak ${result.store}: ${SECONDS} s measured after ${WARMUP} s warm-up`)
  console.log(`  BFF heap after GC: ${signed(heap)}`)
  console.log(`  BFF rss after GC:  ${signed(rss)}`)
  if (redis) console.log(`  Redis used_memory: ${signed(redis)}`)
  console.log(
    `  calls ${counts.calls} ${JSON.stringify(counts.statuses)}, skipped ${counts.skipped}; ` +
      `lost sessions ${counts.lostSessions} (${counts.lostReal} real logins); logged-out calls ${counts.loggedOutCalls}, ` +
      `not 401: ${counts.revived}`
  )
  console.log(
    `  refreshes ${result.samples.at(-1)!.refreshes}, logouts ${counts.logouts} ` +
      `(failed ${counts.failedLogouts}), replaced by ${counts.minted} minted and ` +
      `${counts.realLogins} real logins`
  )
  console.log(
    `  final sweep: ${sweep.checked} live sessions called, not 200: ${JSON.stringify(sweep.notOk)}` +
      (result.redisSessionKeys === undefined
        ? ''
        : `; Redis session keys ${result.redisSessionKeys} (+2: the template and its login); ` +
          `keys by kind ${JSON.stringify(result.redisKeys)}; DBSIZE ` +
          `${result.redisDbsize?.beforeScan} before the SCAN, ${result.redisDbsize?.afterScan} after`)
  )
  console.log(
    `  load average (1 min) over the samples: ${Math.min(...loads).toFixed(2)}–` +
      `${Math.max(...loads).toFixed(2)}; BFF warnings/errors: ${JSON.stringify(result.logs)}`
  )
  for (const [key, kept] of Object.entries(result.reasons ?? {}))
    console.log(`  first reasons of ${key}: ${kept.join(' | ')}`)
  console.log(`  verdict: ${problems.length ? `FAILED: ${problems.join('; ')}` : 'passed'}`)
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)))

async function fetchUser(url: string, cookie: string) {
  const response = await fetch(`${url}/bff/user`, { headers: { 'x-csrf': '1', cookie } })
  await response.body?.cancel()
  return { status: response.status, setCookie: response.headers.getSetCookie() }
}

const infoField = (info: string, name: string) =>
  Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN)

/** Keys by kind (`session`, `sid`, `sub`, `revoked:id`, …): what the store and its parts hold. */
async function keyCensus(client: Redis): Promise<Record<string, number>> {
  const kinds: Record<string, number> = {}
  let cursor = '0'
  do {
    const [next, keys] = await client.scan(cursor, 'COUNT', 1000)
    cursor = next
    for (const key of keys) {
      const parts = key.replace(/^bff:/, '').split(':')
      const kind = parts[0] === 'revoked' ? `${parts[0]}:${parts[1]}` : parts[0]!
      kinds[kind] = (kinds[kind] ?? 0) + 1
    }
  } while (cursor !== '0')
  return kinds
}

const startedAt = new Date()
console.log(
  `soak: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version}, ` +
    `load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`
)
const results: (Result & { problems: string[] })[] = []
for (const store of STORES) {
  const result = await soakStore(store)
  const problems = verdict(result)
  report(result, problems)
  results.push({ ...result, problems })
}
const dir = here('./results')
mkdirSync(dir, { recursive: true })
const file = `${dir}/soak-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`
writeFileSync(
  file,
  `${JSON.stringify({ startedAt, settings: { SECONDS, WARMUP, SESSIONS, REAL, RATE, LOGOUTS, ACCESS_TOKEN_TTL }, results }, null, 2)}\n`
)
console.log(`results: ${file}`)
process.exit(results.some((r) => r.problems.length) ? 1 : 0)
