/**
 * The bench's measuring: fixed-duration loads of autocannon against targets, interleaved in
 * rounds (`loadAll`), CPU time per request read from the process under load, and single timed
 * GETs. Shared by run.ts (the main table) and sessions.ts (many sessions).
 */
import autocannon from 'autocannon'
import { get, type Agent } from 'node:http'
import type { Child } from './child.ts'
import { applySetCookie, setCookieOf } from './cookies.ts'

export const SMOKE = process.argv.includes('--smoke')

export function positive(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`)
  return value
}
export const SECONDS = positive('BENCH_SECONDS', 20)
export const CONNECTIONS = positive('BENCH_CONNECTIONS', 32)
export const WARMUP_SECONDS = SMOKE ? 1 : Math.min(3, SECONDS)
// Each target's load is spread over rounds of one second each (see `loadAll`).
export const ROUNDS = SECONDS
export const CSRF = { 'x-csrf': '1' }

export interface Run {
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
  /** With many sessions: the share of answers that set a new session cookie (slid or re-sealed). */
  newCookieShare?: number
}

/** One stretch of load on one target: the raw figures, merged later into a `Run`. */
export interface Slice {
  requests: number
  seconds: number
  p50Ms: number
  p99Ms: number
  p999Ms: number
  non2xx: number
  errors: number
  cpuMicros: number
  /** The part of cpuMicros spent in the kernel (on loopback, mostly the sockets' TCP work). */
  systemMicros: number
  /** Answers that set a cookie (counted only for a target with `cookies`). */
  newCookies: number
}

/** Something the load is aimed at: the upstream, the bare proxy or a BFF. */
export interface Target<K extends string = string> {
  key: K
  name: string
  url: string
  /**
   * Asked before every slice: a BFF target logs in afresh. The BFF slides a session's idle expiry
   * once a minute with a new cookie, which a browser keeps and autocannon cannot; an older
   * cookie would make every call slide (and re-seal) it again, which no real client causes.
   */
  headers: () => Promise<Record<string, string>>
  /**
   * Cookie headers to spread the load over, one per request in turn (many sessions); each
   * request's own `cookie` replaces the one from `headers`. Kept as a browser keeps them: an
   * answer's Set-Cookie replaces its session's entry in place, for its next request. The turn
   * goes on across slices, so every one of them is used however short the slices.
   */
  cookies?: string[]
  /** The process under load, for its CPU time. */
  server?: Child
}

/**
 * `seconds` of autocannon on one target, with the target's CPU time. Latency is taken from
 * autocannon's per-response event in microseconds: its own histogram keeps whole milliseconds,
 * too coarse for a 2 ms budget.
 */
export async function measure(target: Target, seconds: number): Promise<Slice> {
  const headers = await target.headers()
  let latencies = new Float64Array(1 << 16)
  let n = 0
  const cookies = target.cookies ? browserCookies(target.cookies) : undefined
  const cpuBefore = await target.server?.call<NodeJS.CpuUsage>('cpu')
  const r = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        connections: CONNECTIONS,
        timeout: 10,
        headers,
        duration: seconds,
        ...(cookies ? { requests: [cookies.request] } : {}),
      },
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
    systemMicros: cpuBefore && cpuAfter ? cpuAfter.system - cpuBefore.system : NaN,
    newCookies: cookies?.take() ?? 0,
  }
}

/**
 * The slices of one target as one run: totals, and for latency the median of the slices' own
 * percentiles (the slices of a round ran on the same machine; see `loadAll`).
 */
export function merge(name: string, slices: Slice[]): Run {
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
    ...(sum((s) => s.newCookies)
      ? { newCookieShare: round(sum((s) => s.newCookies) / requests, 4) }
      : {}),
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
export async function loadAll<K extends string>(targets: Target<K>[]): Promise<Map<K, Slice[]>> {
  const slices = new Map<K, Slice[]>(targets.map((t) => [t.key, []]))
  for (const target of targets) await measure(target, WARMUP_SECONDS)
  for (let round = 0; round < ROUNDS; round++) {
    for (let i = 0; i < targets.length; i++) {
      const target = targets[(i + round) % targets.length]!
      slices.get(target.key)!.push(await measure(target, 1))
    }
  }
  return slices
}

/**
 * One call of every session of a target with `cookies`, at full load, not measured: afterwards
 * each has been served once by this BFF and holds the cookie it was last given, as the sessions of
 * users who have been calling for a while have; the turn is back at the first session.
 */
export async function callEachOnce(target: Target): Promise<void> {
  const cookies = browserCookies(target.cookies!)
  const headers = await target.headers()
  await new Promise<autocannon.Result>((resolve, reject) =>
    autocannon(
      {
        url: target.url,
        connections: CONNECTIONS,
        timeout: 10,
        headers,
        amount: target.cookies!.length,
        requests: [cookies.request],
      },
      (err, result) => (err ? reject(err) : resolve(result))
    )
  )
}

/** Where each list of cookies is in its turn, across slices. */
const turns = new WeakMap<string[], { next: number }>()

/**
 * Gives each request the next cookie of `cookies`, in turn across all connections, and keeps what
 * its answer sets as that session's cookie. A connection has one request in flight (autocannon's
 * default pipelining of 1), so its context says whose answer it is.
 */
function browserCookies(cookies: string[]) {
  let turn = turns.get(cookies)
  if (!turn) turns.set(cookies, (turn = { next: 0 }))
  let newCookies = 0
  type Ctx = { session?: number }
  const request: autocannon.Request = {
    setupRequest(request: autocannon.Request, context: object) {
      const i = turn.next++ % cookies.length
      ;(context as Ctx).session = i
      return { ...request, headers: { ...request.headers, cookie: cookies[i]! } }
    },
    onResponse(_status: number, _body: string, context: object, headers?: object) {
      const set = headers && setCookieOf(headers as Record<string, string | string[]>)
      const i = (context as Ctx).session
      if (!set || i === undefined) return
      newCookies++
      cookies[i] = applySetCookie(cookies[i]!, set)
    },
  }
  return { request, take: () => newCookies }
}

/**
 * One GET; resolves with the status and the time to the last byte. On a connection of its own
 * unless `agent` is given (a keep-alive agent: calls in turn on one connection, as a browser's or
 * a load balancer's).
 */
export function timedGet(
  url: string,
  headers: Record<string, string>,
  agent: Agent | false = false
) {
  return new Promise<{ status: number; ms: number; setCookie?: string[] }>((resolve) => {
    const started = performance.now()
    const req = get(url, { headers, agent, timeout: 30_000 }, (res) => {
      res.resume()
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          ms: performance.now() - started,
          setCookie: res.headers['set-cookie'],
        })
      )
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }))
  })
}

/** One large download on a connection of its own: bytes received and MB/s to the last byte. */

export const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits
export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const rate = (slice: Slice) => slice.requests / slice.seconds

/**
 * Per round, a target against (b) in the same round (see `loadAll`): its throughput ratio and the
 * p99 it adds. Report their medians over the rounds.
 */
export function againstBare(mine: Slice[] = [], bare: Slice[] = []) {
  const perRound = (of: (mine: Slice, bare: Slice) => number) =>
    mine.map((slice, i) => (bare[i] ? of(slice, bare[i]) : NaN))
  return {
    ratios: perRound((m, b) => rate(m) / rate(b)),
    addedMs: perRound((m, b) => m.p99Ms - b.p99Ms),
  }
}
