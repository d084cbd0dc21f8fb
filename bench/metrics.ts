/**
 * `tsx bench/metrics.ts`: what the metrics cost per request, in process (no network, so the
 * machine's load moves both sides alike): the same app from `createBff` with and without
 * `metricsToken`, answering `GET /bff/idps` (no IdP call) in alternating rounds; then one call of
 * the recording itself. Prints microseconds per request; no threshold, a development aid.
 */
import { createBff } from '../src/core/app.ts'
import { resolveOptions } from '../src/core/config/resolve.ts'
import { createMetrics } from '../src/core/observe/bff-metrics.ts'
import { silentLogger } from '../src/core/observe/log.ts'

const base = {
  issuer: 'https://idp.example.com',
  clientId: 'bff-client',
  clientSecret: 'client-secret-value',
  baseUrl: 'https://app.example.com',
  sessionSecret: 's'.repeat(32),
  routes: [{ prefix: '/api/', upstream: 'http://127.0.0.1:9/' }],
}
const off = createBff(base, { log: silentLogger })
const on = createBff({ ...base, metricsToken: 'm'.repeat(32) }, { log: silentLogger })
const REQUESTS = 5_000
const ROUNDS = 20

async function round(app: typeof off): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < REQUESTS; i++) {
    const response = await app.request('https://app.example.com/bff/idps')
    await response.arrayBuffer()
  }
  return ((performance.now() - started) * 1000) / REQUESTS
}

const times = { off: [] as number[], on: [] as number[] }
for (let r = 0; r < ROUNDS; r++) {
  times.off.push(await round(off))
  times.on.push(await round(on))
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!
console.log(
  `GET /bff/idps in process, median of ${ROUNDS} rounds of ${REQUESTS}: ` +
    `off ${median(times.off).toFixed(2)} µs, on ${median(times.on).toFixed(2)} µs per request`
)

const metrics = createMetrics(resolveOptions({ ...base, metricsToken: 'm'.repeat(32) }), 'cookie')
const calls = 2_000_000
const started = performance.now()
for (let i = 0; i < calls; i++) metrics.request('/api/orders/1', 'GET', 200, 0.0123)
console.log(
  `metrics.request (route lookup, counter, histogram): ${(((performance.now() - started) * 1e6) / calls).toFixed(0)} ns per call`
)
