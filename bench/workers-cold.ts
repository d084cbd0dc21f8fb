/**
 * A session's first call on a fresh Cloudflare Workers isolate, in the real `workerd` (through
 * Miniflare, as test/adapters/workers/workerd.ts runs it): the BFF's Worker bundle with the
 * `durable-object` and the `cookie` store, and a bare proxy Worker (a few lines: the upstream with
 * a fixed bearer token), in the same interleaved rounds. Each round starts a new workerd for each
 * target, which guarantees a fresh isolate, and makes one call with a valid session cookie (from a
 * real login through the bench IdP, made once before the rounds). Measured per call: the CPU time
 * of workerd's main thread, which runs the isolates (/proc/<pid>/task/<pid>/schedstat before and
 * after), of the whole process, and the wall latency; also the main thread's CPU from its start
 * until ready, the isolate's start-up (module scope) included. Medians over the rounds, and the
 * BFF minus the bare proxy round by round. For comparison, the bare proxy with a session store's
 * least: its token read from a Durable Object named by the cookie.
 *
 * Each store in two layouts. "objects in the same workerd": the Durable Objects run in the
 * restarted workerd too, cold like the isolate (their storage kept in a temporary directory), so
 * the call pays their start and their work on the same thread: the most a fresh process costs.
 * "objects apart": they run in a workerd of their own that lives through the bench, reached
 * through Miniflare's dev registry, as on Cloudflare, where a session's object runs in an isolate
 * of its own, often elsewhere: the Worker isolate's own cost.
 *
 * `npx tsx bench/workers-cold.ts [--smoke]`; `npm run bench -- --only=workers` runs it as (w).
 * BENCH_WORKERS_ROUNDS sets the rounds (default 12; 2 with --smoke); BENCH_WORKERS_COMPARE=<dir>
 * adds another checkout's BFF (objects in the same workerd) to the same rounds.
 */
import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Readable } from 'node:stream'
import { promisify } from 'node:util'
import { Miniflare, type WorkerOptions } from 'miniflare'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp, type Idp } from '../src/demo/idp.ts'
import { buildWorker, type WorkerBuild } from '../test/adapters/workers/build.ts'
import { freePort } from '../test/helpers/upstream.ts'
import { startChild, type Child } from './child.ts'
import { CSRF, SMOKE, median, positive, round, timedGet } from './load.ts'
import { cookieHeader, here, login } from './stores.ts'
import { bareObjectSetup, bareSetup } from './workers-bare.ts'
import { processCpuNs, start, threadCpuNs, workersUnmeasurable, type Setup } from './workerd.ts'

export { workersUnmeasurable }

export type WorkersStore = 'durable-object' | 'cookie'
export type WorkersLayout = 'together' | 'apart'
export type WorkersTargetKey =
  'bare' | 'bare+object' | `${WorkersStore}/${WorkersLayout}` | `${WorkersStore}/together@compare`
const STORES: readonly WorkersStore[] = ['durable-object', 'cookie']
const LAYOUTS: readonly WorkersLayout[] = ['together', 'apart']
/**
 * BENCH_WORKERS_COMPARE=<another checkout, built with its own wrangler.toml>: its BFF too, with
 * objects in the same workerd, in the same rounds (a before/after that consecutive runs, on
 * machines whose speed drifts, cannot give).
 */
const COMPARE = process.env.BENCH_WORKERS_COMPARE
export const WORKERS_ROUNDS = SMOKE ? 2 : positive('BENCH_WORKERS_ROUNDS', 12)
/** The most CPU the BFF's first call may add to the bare proxy Worker's (issue 21). */
export const WORKERS_TARGET_MS = 2

/** One first call on a fresh isolate. */
export interface FirstCall {
  status: number
  /** CPU of workerd's main thread for the call, milliseconds. */
  cpuMs: number
  /** CPU of all of workerd's threads for the call. */
  processCpuMs: number
  wallMs: number
  /** CPU of workerd's main thread from its start until ready (the isolates' start-up included). */
  startupCpuMs: number
  /**
   * CPU of workerd's main thread for another session's first call right after (the isolate
   * warm, that session new to it), then for the first session's second call.
   */
  otherSessionCpuMs: number
  secondCpuMs: number
}

export interface WorkersResult {
  rounds: number
  /** Per target, its first calls in round order. */
  calls: Partial<Record<WorkersTargetKey, FirstCall[]>>
  /** Per BFF target, its first call minus the bare proxy's of the same round. */
  added: Partial<Record<WorkersTargetKey, { cpuMs: number[]; wallMs: number[] }>>
  problems: string[]
}

/** One round's call: a new workerd (a fresh isolate), one GET with the session, its costs. */
async function firstCall(setup: Setup): Promise<FirstCall> {
  const { mf, pid, url } = await start(setup)
  try {
    const startupCpuMs = threadCpuNs(pid, pid) / 1e6
    // Whatever start-up work is still queued settles first: the call is measured alone.
    await new Promise((resolve) => setTimeout(resolve, 200))
    const main0 = threadCpuNs(pid, pid)
    const all0 = processCpuNs(pid)
    const result = await timedGet(`${url}/api/items`, setup.headers)
    const main1 = threadCpuNs(pid, pid)
    const all1 = processCpuNs(pid)
    const settled = async () => {
      await new Promise((resolve) => setTimeout(resolve, 50))
      return threadCpuNs(pid, pid)
    }
    const main2 = await settled()
    const other = await timedGet(`${url}/api/items`, setup.otherHeaders)
    const main3 = threadCpuNs(pid, pid)
    const main4 = await settled()
    const second = await timedGet(`${url}/api/items`, setup.headers)
    const main5 = threadCpuNs(pid, pid)
    return {
      status: result.status,
      cpuMs: round((main1 - main0) / 1e6, 3),
      processCpuMs: round((all1 - all0) / 1e6, 3),
      wallMs: round(result.ms, 3),
      startupCpuMs: round(startupCpuMs, 3),
      otherSessionCpuMs: other.status === 200 ? round((main3 - main2) / 1e6, 3) : NaN,
      secondCpuMs: second.status === 200 ? round((main5 - main4) / 1e6, 3) : NaN,
    }
  } finally {
    await mf.dispose()
  }
}

const OBJECTS = (store: WorkersStore) => `bff-objects-${store}`

/** The BFF bundle as a Miniflare Worker, its objects here or in the Worker `objectsIn`. */
function bffWorker(
  name: string,
  build: WorkerBuild,
  env: Record<string, string>,
  objectsIn?: string
): WorkerOptions {
  return {
    name,
    modules: true,
    scriptPath: build.scriptPath,
    compatibilityDate: build.compatibilityDate,
    compatibilityFlags: build.compatibilityFlags,
    bindings: { ...build.bindings, ...env },
    durableObjects: Object.fromEntries(
      Object.entries(build.durableObjects).map(([binding, designator]) => [
        binding,
        objectsIn ? { ...designator, scriptName: objectsIn } : designator,
      ])
    ),
  }
}

/**
 * A BFF Worker with `store`, logged in once through the IdP. Objects together: their storage kept
 * for the rounds in a temporary directory. Apart: a workerd of their own, started here, running
 * the same bundle, stopped by the returned `stop`.
 */
export async function bffSetup(
  store: WorkersStore,
  layout: WorkersLayout,
  build: WorkerBuild,
  idp: Idp,
  upstream: string,
  /** Marks the bundle of BENCH_WORKERS_COMPARE's checkout. */
  compare = false
): Promise<{ setup: Setup; stop: () => Promise<void> }> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const clientId = `bench-workers-${store}-${layout}${compare ? '-compare' : ''}`
  await idp.addClient(
    bffClientMetadata({
      redirectUris: [`${url}/bff/callback`],
      clientId,
      clientSecret: DEMO_BFF_CLIENT.clientSecret,
    })
  )
  const env = {
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: url,
    BFF_SESSION_SECRET: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString(
      'base64url'
    ),
    BFF_SESSION_STORE: store,
    BFF_API: `/api/=${upstream}/`,
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), `bff-bench-workers-${store}-${layout}-`))
  let host: Miniflare | undefined
  const setup: Setup = {
    key: compare && layout === 'together' ? `${store}/together@compare` : `${store}/${layout}`,
    port,
    options: bffWorker('bff', build, env, layout === 'apart' ? OBJECTS(store) : undefined),
    headers: {},
    otherHeaders: {},
    ...(layout === 'apart' ? { registry: dir } : { persist: dir }),
  }
  const stop = async () => {
    await host?.dispose()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    if (layout === 'apart') {
      host = new Miniflare({
        cf: false,
        host: '127.0.0.1',
        port: 0,
        unsafeDevRegistryPath: dir,
        workers: [bffWorker(OBJECTS(store), build, env)],
        handleRuntimeStdio(stdout: Readable, stderr: Readable) {
          stdout.resume()
          stderr.resume()
        },
      })
      await host.ready
    }
    const { mf } = await start(setup)
    try {
      for (const user of ['a', 'b']) {
        const jar = await login(url, `${clientId}-${user}`)
        const headers = { ...CSRF, cookie: cookieHeader(jar, url) }
        const check = await timedGet(`${url}/api/items`, headers)
        if (check.status !== 200)
          throw new Error(`the ${setup.key} Worker answered ${check.status}`)
        if (user === 'a') setup.headers = headers
        else setup.otherHeaders = headers
      }
    } finally {
      await mf.dispose()
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { setup, stop }
}

/** The whole measurement against `upstream` (an origin). */
export async function benchWorkers(upstream: string): Promise<WorkersResult> {
  const problems: string[] = []
  const build = await buildWorker()
  // Tokens that outlive the bench: a first call must never need a refresh.
  const idp = await startIdp({ accessTokenTtl: 3600, clients: [] })
  const stops: (() => Promise<void>)[] = []
  try {
    const setups: Setup[] = [await bareSetup(upstream)]
    const bareObject = await bareObjectSetup(upstream)
    stops.push(bareObject.stop)
    setups.push(bareObject.setup)
    for (const store of STORES) {
      for (const layout of LAYOUTS) {
        const { setup, stop } = await bffSetup(store, layout, build, idp, upstream)
        stops.push(stop)
        setups.push(setup)
      }
    }
    if (COMPARE) {
      await promisify(execFile)('npm', ['run', '--silent', 'build:worker'], {
        cwd: COMPARE,
        env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' },
      })
      // workerd reads modules only below its working directory: the bundle comes over here.
      const scriptPath = path.join(path.dirname(build.scriptPath), '../worker-compare/worker.js')
      mkdirSync(path.dirname(scriptPath), { recursive: true })
      copyFileSync(path.join(COMPARE, 'dist/worker/worker.js'), scriptPath)
      const other = { ...build, scriptPath }
      for (const store of STORES) {
        const { setup, stop } = await bffSetup(store, 'together', other, idp, upstream, true)
        stops.push(stop)
        setups.push(setup)
      }
    }
    const calls: WorkersResult['calls'] = {}
    for (let r = 0; r < WORKERS_ROUNDS; r++) {
      // Rotated order, as the load rounds do: no target always follows the same one.
      for (let i = 0; i < setups.length; i++) {
        const setup = setups[(i + r) % setups.length]!
        const call = await firstCall(setup)
        if (call.status !== 200) {
          problems.push(`(w) ${setup.key}: first call answered ${call.status}`)
        }
        ;(calls[setup.key] ??= []).push(call)
      }
    }
    const added: WorkersResult['added'] = {}
    const bare = calls.bare!
    for (const setup of setups) {
      if (setup.key === 'bare') continue
      const own = calls[setup.key]!
      added[setup.key] = {
        cpuMs: own.map((c, i) => round(c.cpuMs - bare[i]!.cpuMs, 3)),
        wallMs: own.map((c, i) => round(c.wallMs - bare[i]!.wallMs, 3)),
      }
    }
    return { rounds: WORKERS_ROUNDS, calls, added, problems }
  } finally {
    for (const stop of stops) await stop()
    await idp.stop()
  }
}

const NAMES: Record<WorkersTargetKey, string> = {
  bare: '(w) bare proxy Worker',
  'bare+object': '(w) bare proxy + session object',
  'durable-object/together': '(w) BFF, durable-object',
  'cookie/together': '(w) BFF, cookie store',
  'durable-object/apart': '(w) BFF, durable-object, objects apart',
  'cookie/apart': '(w) BFF, cookie store, objects apart',
  'durable-object/together@compare': '(w) BFF, durable-object [compare]',
  'cookie/together@compare': '(w) BFF, cookie store [compare]',
}

/** The (w) lines of the report, and the targets' verdicts. */
export function reportWorkers(result: WorkersResult) {
  const ms = (n: number) => n.toFixed(2)
  const plus = (n: number) => `${n >= 0 ? '+' : ''}${ms(n)}`
  const range = (values: number[]) => `${ms(Math.min(...values))}–${ms(Math.max(...values))}`
  const pad = (s: string, n: number) => s.padStart(n)
  console.log('')
  console.log(
    `first call of a session on a fresh Workers isolate (workerd): median of ${result.rounds} ` +
      'rounds (lowest–highest); CPU of workerd’s main thread; start-up: until ready; then on ' +
      'the warm isolate, other: another session’s first call, 2nd: the first session again'
  )
  console.log(
    `${'target'.padEnd(40)}${pad('CPU ms', 8)}${pad('rounds', 13)}${pad('wall ms', 9)}` +
      `${pad('start-up', 10)}${pad('other', 8)}${pad('2nd', 7)}${pad('CPU vs bare', 13)}` +
      `${pad('rounds', 14)}` +
      `${pad('wall vs bare', 14)}`
  )
  const targets: Record<string, { value: number; target: string; met: boolean }> = {}
  for (const [key, calls] of Object.entries(result.calls) as [WorkersTargetKey, FirstCall[]][]) {
    const cpu = calls.map((c) => c.cpuMs)
    let line =
      `${NAMES[key].padEnd(40)}${pad(ms(median(cpu)), 8)}${pad(range(cpu), 13)}` +
      `${pad(ms(median(calls.map((c) => c.wallMs))), 9)}` +
      `${pad(ms(median(calls.map((c) => c.startupCpuMs))), 10)}` +
      `${pad(ms(median(calls.map((c) => c.otherSessionCpuMs))), 8)}` +
      `${pad(ms(median(calls.map((c) => c.secondCpuMs))), 7)}`
    const added = result.added[key]
    if (added) {
      const value = round(median(added.cpuMs))
      line +=
        `${pad(plus(value), 13)}${pad(range(added.cpuMs), 14)}` +
        `${pad(plus(median(added.wallMs)), 14)}`
      // The target is the BFF's; the bare proxy with a session object is for comparison.
      if (key !== 'bare+object') {
        targets[`${NAMES[key]} first call CPU added`] = {
          value,
          target: `< ${WORKERS_TARGET_MS} ms`,
          met: value < WORKERS_TARGET_MS,
        }
      }
    }
    console.log(line)
  }
  return targets
}

// On its own: an upstream of its own, and the report.
if (process.argv[1] && path.resolve(process.argv[1]) === here('./workers-cold.ts')) {
  const unmeasurable = workersUnmeasurable()
  if (unmeasurable) {
    console.log(`(w) first call on a fresh Workers isolate: skipped, ${unmeasurable}`)
    process.exit(0)
  }
  const loadAverage = () =>
    os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')
  console.log(`load average ${loadAverage()}`)
  const upstream: Child = await startChild(here('./upstream.ts'))
  let failed = false
  try {
    const result = await benchWorkers(upstream.url)
    const targets = reportWorkers(result)
    for (const [name, t] of Object.entries(targets)) {
      console.log(`target ${name} ${t.target}: ${t.value} ${t.met ? 'met' : 'MISSED'}`)
    }
    if (process.env.BENCH_WORKERS_JSON) console.log(JSON.stringify(result))
    for (const problem of result.problems) console.error(`bench: FAILED: ${problem}`)
    failed = result.problems.length > 0
  } finally {
    await upstream.stop()
  }
  console.log(`load average ${loadAverage()}`)
  process.exit(failed ? 1 : 0)
}
