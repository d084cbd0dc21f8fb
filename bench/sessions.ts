/**
 * The cold path: real traffic spreads over thousands of users, and behind a load balancer a request
 * often meets a session this instance has not seen yet. Per store, a BFF of its own holds 1, 10 000
 * and 100 000 live sessions (one real login, the rest minted from it: clone.ts, mint.ts) and the
 * load goes round robin over the first N of them, interleaved in rounds with a bare proxy as in the
 * main table. Then "the first call of a session on this instance": sessions the BFF has never
 * served, each called once, then each once more; the CPU per call and the latency of the two.
 */
import type { Idp } from '../src/demo/idp.ts'
import { startChild, type Child } from './child.ts'
import {
  CSRF,
  SMOKE,
  againstBare,
  loadAll,
  median,
  merge,
  positive,
  round,
  timedGet,
  type Run,
  type Target,
} from './load.ts'
import {
  LETTER,
  here,
  startStore,
  storeName,
  type StoreKind,
  type StoreUnderTest,
} from './stores.ts'

const COUNTS = SMOKE ? [1, 1000] : [1, 10_000, 100_000]
/** Sessions kept aside for the first-call measurement, never part of a load. */
const FIRST_CALLS = positive('BENCH_FIRST_CALLS', SMOKE ? 50 : 300)

export const SESSION_TARGETS = { ratioAtMost: 0.7, firstCallAddedMs: 0.3 } as const

export interface FirstCall {
  sessions: number
  /** CPU time of the BFF per call, microseconds: first calls, then second calls of the same sessions. */
  firstCpuUs: number
  secondCpuUs: number
  /** Median latency to the last byte, each call on a connection of its own. */
  firstP50Ms: number
  secondP50Ms: number
}

export interface SessionsResult {
  runs: Record<string, Run & { store: StoreKind; sessions: number }>
  ratios: Record<string, { median: number; rounds: number[]; p99AddedMs: number }>
  firstCall: Partial<Record<StoreKind, FirstCall>>
  /** Seconds each store took to mint its sessions (not measured load). */
  mintSeconds: Partial<Record<StoreKind, number>>
  problems: string[]
}

/** The session cookie of a login's headers, its chunks joined: the sealed value. */
function sealedOf(cookieHeader: string): string {
  const jar = new Map(
    cookieHeader.split('; ').map((pair) => pair.split('=', 2) as [string, string])
  )
  let sealed = jar.get('bff') ?? ''
  for (let i = 1; jar.has(`bff.${i}`); i++) sealed += jar.get(`bff.${i}`)
  return sealed
}

async function firstCalls(bff: Child, url: string, cookies: string[]): Promise<FirstCall> {
  const pass = async () => {
    const before = await bff.call<NodeJS.CpuUsage>('cpu')
    const ms: number[] = []
    for (const cookie of cookies) {
      const { status, ms: took } = await timedGet(url, { ...CSRF, cookie })
      if (status !== 200) throw new Error(`a minted session answered ${status}`)
      ms.push(took)
    }
    const after = await bff.call<NodeJS.CpuUsage>('cpu')
    const cpu = after.user + after.system - before.user - before.system
    return { cpuUs: cpu / cookies.length, p50: median(ms) }
  }
  const first = await pass()
  const second = await pass()
  return {
    sessions: cookies.length,
    firstCpuUs: round(first.cpuUs, 1),
    secondCpuUs: round(second.cpuUs, 1),
    firstP50Ms: round(first.p50, 3),
    secondP50Ms: round(second.p50, 3),
  }
}

export async function benchSessions(
  idp: Idp,
  upstream: Child,
  stores: readonly StoreKind[],
  /** The `cluster` store's seed list, when it is among `stores` (bench/redis-cluster.ts). */
  clusterSeeds?: string
): Promise<SessionsResult> {
  const result: SessionsResult = {
    runs: {},
    ratios: {},
    firstCall: {},
    mintSeconds: {},
    problems: [],
  }
  const bare = await startChild(here('./bare-proxy.ts'), {
    env: { NODE_ENV: 'production', BENCH_UPSTREAM: upstream.url },
  })
  const running: StoreUnderTest[] = []
  try {
    const targets: Target[] = [
      {
        key: 'bare',
        name: '(b) bare Node proxy',
        url: `${bare.url}/api/items`,
        headers: async () => CSRF,
        server: bare,
      },
    ]
    const reserved = new Map<StoreKind, string[]>()
    const largest = Math.max(...COUNTS)
    for (const store of stores) {
      const under = await startStore(store, idp, upstream, undefined, '-sessions', {
        clusterSeeds,
      })
      running.push(under)
      const login = await under.target.headers()
      const started = performance.now()
      const cookies = await under.bff.call<string[]>('mint', {
        cookie: sealedOf(login.cookie!),
        count: largest + FIRST_CALLS,
      })
      result.mintSeconds[store] = round((performance.now() - started) / 1000, 1)
      reserved.set(store, cookies.slice(largest))
      for (const count of COUNTS) {
        targets.push({
          key: `${store}:${count}`,
          name: `(${LETTER[store]}) ${store}, ${count.toLocaleString('en')} sessions`,
          url: under.target.url,
          headers: async () => CSRF,
          cookies: cookies.slice(0, count),
          server: under.bff,
        })
      }
    }
    // First calls before any load, so no cache of the BFF has met these sessions.
    for (const under of running) {
      result.firstCall[under.store] = await firstCalls(
        under.bff,
        under.target.url,
        reserved.get(under.store)!
      )
    }
    const slices = await loadAll(targets)
    for (const target of targets) {
      if (target.key === 'bare') continue
      const [store, count] = target.key.split(':') as [StoreKind, string]
      const run = merge(target.name, slices.get(target.key)!)
      result.runs[target.key] = { ...run, store, sessions: Number(count) }
      if (run.non2xx || run.errors) {
        result.problems.push(`${run.name}: ${run.non2xx} non-2xx answers, ${run.errors} errors`)
      }
      const { ratios, addedMs } = againstBare(slices.get(target.key), slices.get('bare'))
      result.ratios[target.key] = {
        median: round(median(ratios)),
        rounds: ratios.map((r) => round(r)),
        p99AddedMs: round(median(addedMs)),
      }
    }
  } finally {
    for (const under of running) await under.stop()
    await bare.stop()
  }
  return result
}

/** The many-sessions table and first-call lines; the targets it checks, for the verdicts. */
export function reportSessions(result: SessionsResult) {
  const pad = (s: string | number, n: number) => String(s).padStart(n)
  const targets: Record<string, { value: number; target: string; met: boolean }> = {}
  console.log('')
  console.log(
    `${'many sessions'.padEnd(32)}${pad('req/s', 8)}${pad('CPU µs/req', 12)}${pad('vs (b)', 8)}${pad('p99 added', 12)}`
  )
  for (const [key, run] of Object.entries(result.runs)) {
    const r = result.ratios[key]!
    console.log(
      `${run.name.padEnd(32)}${pad(run.requestsPerSecond, 8)}${pad(run.cpuUsPerRequest ?? '', 12)}` +
        `${pad(r.median.toFixed(2), 8)}${pad(`${r.p99AddedMs >= 0 ? '+' : ''}${r.p99AddedMs.toFixed(2)} ms`, 12)}`
    )
    if (run.sessions === Math.max(...COUNTS)) {
      targets[`(${LETTER[run.store]}) at ${run.sessions} sessions /(b)`] = {
        value: r.median,
        target: `>= ${SESSION_TARGETS.ratioAtMost}`,
        met: r.median >= SESSION_TARGETS.ratioAtMost,
      }
    }
  }
  for (const [store, first] of Object.entries(result.firstCall) as [StoreKind, FirstCall][]) {
    const addedMs = round((first.firstCpuUs - first.secondCpuUs) / 1000, 3)
    console.log(
      `first call of a session, ${storeName(store)} (${first.sessions} sessions): CPU ${first.firstCpuUs} µs ` +
        `vs ${first.secondCpuUs} µs on its second call (+${addedMs} ms); latency p50 ` +
        `${first.firstP50Ms} ms vs ${first.secondP50Ms} ms (minted in ${result.mintSeconds[store]} s)`
    )
    targets[`(${LETTER[store]}) first call added CPU`] = {
      value: addedMs,
      target: `<= ${SESSION_TARGETS.firstCallAddedMs} ms`,
      met: addedMs <= SESSION_TARGETS.firstCallAddedMs,
    }
  }
  return targets
}
