/**
 * `npm run bench -- --pdp`: what a route's `authorize` (an external policy decision point) adds
 * to a proxied call, with and without its decision cache.
 *
 * One BFF (startNode, NODE_ENV=production, memory store) with three routes to the same upstream:
 * `/api/` without `authorize`, `/pdp/` asking the PDP on every call (`cacheSeconds` 0) and
 * `/cached/` keeping decisions for an hour. The PDP (bench/pdp-server.ts) answers
 * `{ "result": true }` at once on loopback, so what is measured is the BFF's part plus one loopback
 * round trip, not a policy's evaluation. Every server runs in a process of its own, autocannon in
 * this one. In rounds that rotate the order (as bench/run.ts does, the VM's speed drifts), each
 * route gets one second of calls one at a time (latency per call) and one second of 32 connections
 * (throughput); the added latency is taken within each round against `/api/` and the median of
 * the rounds reported. BENCH_SECONDS (default 10) sets the rounds; `--smoke` runs one briefly;
 * BENCH_PDP_FETCH=fetch asks the PDP through Node's fetch instead of the Node entry's undici
 * transport (src/adapters/node/pdp-fetch.ts), to compare the two.
 */
import autocannon from 'autocannon'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp } from '../src/demo/idp.ts'
import { createCookieJar, redirectLocation } from '../test/helpers/http.ts'
import { loginAtIdp } from '../test/helpers/idp-login.ts'
import { freePort } from '../test/helpers/upstream.ts'
import { startChild, type Child } from './child.ts'

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
const SMOKE = process.argv.includes('--smoke')
const ROUNDS = SMOKE ? 1 : Number(process.env.BENCH_SECONDS ?? 10)
const LOADED_CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32)
const WARMUP_SECONDS = SMOKE ? 1 : 3

const ROUTES = [
  { key: 'none', name: 'no authorize', prefix: '/api/' },
  { key: 'pdp', name: 'authorize, no cache', prefix: '/pdp/' },
  { key: 'cached', name: 'authorize, cached', prefix: '/cached/' },
] as const
type Key = (typeof ROUTES)[number]['key']

interface Slice {
  requests: number
  p50Ms: number
  p99Ms: number
  non2xx: number
  errors: number
}

/** `seconds` of autocannon; latency per response in microseconds, as bench/run.ts takes it. */
async function measure(
  url: string,
  headers: Record<string, string>,
  connections: number,
  seconds: number
): Promise<Slice> {
  const latencies: number[] = []
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      { url, connections, headers, duration: seconds, timeout: 10 },
      (err, r) => (err ? reject(err) : resolve(r))
    )
    instance.on('response', (_client, _status, _bytes, ms) => latencies.push(ms))
  })
  latencies.sort((a, b) => a - b)
  const at = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.ceil(p * latencies.length) - 1)] ?? NaN
  return {
    requests: result.requests.total,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  }
}

async function login(url: string): Promise<Record<string, string>> {
  const jar = createCookieJar({ baseUrl: url })
  const start = await jar.get('/bff/login?returnTo=/')
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
    login: 'bench',
    password: 'pass',
  })
  const done = await jar.follow(atIdp)
  if (done.status !== 302) throw new Error(`/bff/callback answered ${done.status}`)
  const cookie = Object.entries(jar.cookies(url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
  return { 'x-csrf': '1', cookie }
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
/** Maps (the slices by route) as objects in the JSON. */
const replacer = (_key: string, value: unknown) =>
  value instanceof Map ? Object.fromEntries(value) : value
const fixed = (n: number, digits = 3) => (n >= 0 ? '+' : '') + n.toFixed(digits)

export async function benchPdp(): Promise<void> {
  console.log(
    `bench --pdp: ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} of 1 s per route, one connection ` +
      `then ${LOADED_CONNECTIONS}, on ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ` +
      `Node ${process.version}, PDP via ${process.env.BENCH_PDP_FETCH === 'fetch' ? "Node's fetch" : 'undici'}, load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`
  )
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bff-bench-pdp-'))
  const running: Child[] = []
  const idp = await startIdp({ accessTokenTtl: 3600, clients: [] })
  const problems: string[] = []
  try {
    const upstream = await startChild(here('./upstream.ts'))
    running.push(upstream)
    const pdp = await startChild(here('./pdp-server.ts'))
    running.push(pdp)
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    await idp.addClient(bffClientMetadata({ redirectUris: [`${url}/bff/callback`] }))
    const authorize = `${pdp.url}/v1/data/bff/allow`
    const configFile = path.join(dir, 'bff.json')
    writeFileSync(
      configFile,
      JSON.stringify({
        idps: {
          bench: {
            issuer: idp.issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: DEMO_BFF_CLIENT.clientSecret,
            scopes: 'openid profile email offline_access',
          },
        },
        routes: [
          { prefix: '/api/', upstream: `${upstream.url}/api/` },
          { prefix: '/pdp/', upstream: `${upstream.url}/api/`, authorize: { url: authorize } },
          {
            prefix: '/cached/',
            upstream: `${upstream.url}/api/`,
            authorize: { url: authorize, cacheSeconds: 3600 },
          },
        ],
      })
    )
    const bff = await startChild(here('./bff-server.ts'), {
      env: {
        NODE_ENV: 'production',
        ...(process.env.BENCH_PDP_FETCH ? { BENCH_PDP_FETCH: process.env.BENCH_PDP_FETCH } : {}),
        BENCH_BFF_ENV: JSON.stringify({
          PORT: String(port),
          HOST: '127.0.0.1',
          BFF_BASE_URL: url,
          BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
          BFF_SESSION_STORE: 'memory',
          BFF_CONFIG: configFile,
        }),
      },
    })
    running.push(bff)

    // Per route and mode, one slice per round; the PDP's calls per request per route.
    const slices = {
      one: new Map<Key, Slice[]>(ROUTES.map((r) => [r.key, []])),
      loaded: new Map<Key, Slice[]>(ROUTES.map((r) => [r.key, []])),
    }
    const pdpCalls = new Map<Key, { calls: number; requests: number }>(
      ROUTES.map((r) => [r.key, { calls: 0, requests: 0 }])
    )
    let headers = await login(url)
    for (const route of ROUTES) {
      await measure(`${url}${route.prefix}items`, headers, 8, WARMUP_SECONDS)
    }
    // The PDP's calls of the warm-up are not counted.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const warm = await pdp.call<Record<string, number>>('calls')
    for (let round = 0; round < ROUNDS; round++) {
      // A fresh session per round: the BFF slides idle expiry once a minute with a new cookie.
      headers = await login(url)
      for (let i = 0; i < ROUTES.length; i++) {
        const route = ROUTES[(i + round) % ROUTES.length]!
        for (const [mode, connections] of [
          ['one', 1],
          ['loaded', LOADED_CONNECTIONS],
        ] as const) {
          const slice = await measure(`${url}${route.prefix}items`, headers, connections, 1)
          pdpCalls.get(route.key)!.requests += slice.requests
          slices[mode].get(route.key)!.push(slice)
          if (slice.non2xx || slice.errors) {
            problems.push(`${route.name}: ${slice.non2xx} non-2xx, ${slice.errors} errors`)
          }
        }
      }
    }

    // Counted by the PDP per route, once the last calls have landed.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const counts = await pdp.call<Record<string, number>>('calls')
    for (const route of ROUTES) {
      pdpCalls.get(route.key)!.calls = (counts[route.prefix] ?? 0) - (warm[route.prefix] ?? 0)
    }
    const added = (mode: 'one' | 'loaded', key: Key, pick: (s: Slice) => number) => {
      const base = slices[mode].get('none')!
      return slices[mode].get(key)!.map((slice, i) => pick(slice) - pick(base[i]!))
    }
    const range = (values: number[]) =>
      `${Math.min(...values).toFixed(3)}…${Math.max(...values).toFixed(3)}`
    console.log('')
    console.log(
      `${'route'.padEnd(22)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}` +
        `${'p50 added'.padStart(11)}${'p99 added'.padStart(11)}` +
        `${`req/s ×${LOADED_CONNECTIONS}`.padStart(13)}${'vs none'.padStart(9)}` +
        `${'PDP calls/req'.padStart(15)}`
    )
    const report: Record<string, unknown> = {}
    for (const route of ROUTES) {
      const one = slices.one.get(route.key)!
      const loaded = slices.loaded.get(route.key)!
      const p50 = median(one.map((s) => s.p50Ms))
      const p99 = median(one.map((s) => s.p99Ms))
      const rate = median(loaded.map((s) => s.requests))
      const ratio = median(
        loaded.map((s, i) => s.requests / slices.loaded.get('none')![i]!.requests)
      )
      const p50Added = median(added('one', route.key, (s) => s.p50Ms))
      const p99Added = median(added('one', route.key, (s) => s.p99Ms))
      const { calls, requests } = pdpCalls.get(route.key)!
      const base = route.key === 'none'
      console.log(
        `${route.name.padEnd(22)}${p50.toFixed(3).padStart(9)}${p99.toFixed(3).padStart(9)}` +
          `${(base ? '' : fixed(p50Added)).padStart(11)}${(base ? '' : fixed(p99Added)).padStart(11)}` +
          `${String(Math.round(rate)).padStart(13)}${ratio.toFixed(2).padStart(9)}` +
          `${(calls / requests).toFixed(4).padStart(15)}`
      )
      report[route.key] = {
        p50Ms: p50,
        p99Ms: p99,
        p50AddedMs: base ? 0 : p50Added,
        p99AddedMs: base ? 0 : p99Added,
        p50AddedRange: base ? undefined : range(added('one', route.key, (s) => s.p50Ms)),
        p99AddedRange: base ? undefined : range(added('one', route.key, (s) => s.p99Ms)),
        loadedRequestsPerSecond: Math.round(rate),
        loadedRatio: ratio,
        pdpCallsPerRequest: calls / requests,
      }
    }
    console.log(
      `latency: one call at a time, median of ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} ` +
        '(added: against "no authorize" in the same round); req/s: median under load'
    )
    // autocannon counts a few requests still in flight when a slice ends.
    const uncached = pdpCalls.get('pdp')!
    if (uncached.calls < uncached.requests * 0.99) {
      problems.push(
        `the uncached route asked the PDP ${uncached.calls} times for ${uncached.requests} calls`
      )
    }
    if (pdpCalls.get('cached')!.calls > ROUNDS * 2 + 2) {
      problems.push(`the cached route asked the PDP ${pdpCalls.get('cached')!.calls} times`)
    }
    const results = here('./results')
    mkdirSync(results, { recursive: true })
    const file = `${results}/${new Date().toISOString().replace(/[:.]/g, '-')}-pdp${SMOKE ? '-smoke' : ''}.json`
    const machine = { cpus: os.cpus().length, node: process.version, loadAverage: os.loadavg() }
    writeFileSync(
      file,
      `${JSON.stringify({ machine, rounds: ROUNDS, slices, pdp: report }, replacer, 2)}\n`
    )
    console.log(`results: ${file}`)
  } finally {
    for (const child of running.reverse()) await child.stop()
    await idp.stop()
    rmSync(dir, { recursive: true, force: true })
  }
  for (const problem of problems) console.error(`bench --pdp: FAILED: ${problem}`)
  process.exit(problems.length ? 1 : 0)
}
