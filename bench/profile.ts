/**
 * `npx tsx bench/profile.ts [cookie|memory|redis|cluster|bare|floor] [seconds]`: where the CPU of a proxied call
 * goes. Loads one target as the bench does (32 connections of autocannon, the same upstream and
 * login) and takes a V8 CPU profile of the server over the load alone (no start-up, login or
 * idle time), then prints its self time by function and by source file, as a share of the
 * profile's busy samples and as µs per call. Writes the profile to bench/results/ for DevTools.
 * A development aid: what it prints depends on the machine; compare two commits in one sitting.
 * BENCH_SESSIONS=N: the load goes round robin over N sessions minted from the login, each called
 * once before (as the many-sessions rows of bench/sessions.ts do).
 * BENCH_FIRST_CALLS=N: instead of a load, N minted sessions called one after another, twice, as
 * bench/sessions.ts measures a session's first call on an instance; prints the self time by
 * function that the first pass spent more than the second, µs per call.
 * BENCH_HEAP=1: instead of CPU, what the load allocates (a sampled heap profile, collected objects
 * included), bytes per call by function and by file.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { Agent } from 'node:http'
import { startIdp } from '../src/demo/idp.ts'
import { startChild, type Child } from './child.ts'
import { sessionCookieValue } from './cookies.ts'
import { applySetCookie } from './cookies.ts'
import { CSRF, callEachOnce, measure, timedGet, type Target } from './load.ts'
import { startBenchCluster } from './redis-cluster.ts'
import { ACCESS_TOKEN_TTL, here, startStore, type StoreKind } from './stores.ts'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

const kind = (process.argv[2] ?? 'memory') as StoreKind | 'bare' | 'floor'
const seconds = Number(process.argv[3] ?? 10)

const shortUrl = (url: string) =>
  url
    .replace(/^file:\/\//, '')
    .replace(/^.*\/node_modules\//, '~/')
    .replace(/^.*\/(src|bench|test)\//, '$1/')

/** Self time per function and per file, over the samples that were not idle. */
function selfTimes(profile: CpuProfile, count = 40) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  let busy = 0
  profile.samples.forEach((id, i) => {
    const frame = byId.get(id)!.callFrame
    const micros = profile.timeDeltas[i] ?? 0
    if (frame.functionName === '(idle)') return
    busy += micros
    const file = frame.url ? shortUrl(frame.url) : frame.functionName
    const fn = `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + micros)
    byFile.set(file, (byFile.get(file) ?? 0) + micros)
  })
  // Total time: each function on a sample's stack counts the sample once.
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const child of n.children ?? []) parent.set(child, n.id)
  const total = new Map<string, number>()
  profile.samples.forEach((id, i) => {
    if (byId.get(id)!.callFrame.functionName === '(idle)') return
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame
      const file = frame.url ? shortUrl(frame.url) : frame.functionName
      seen.add(`${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`)
    }
    for (const fn of seen) total.set(fn, (total.get(fn) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  const top = (map: Map<string, number>, n: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, n)
  return {
    busy,
    functions: top(byFunction, count),
    files: top(byFile, count),
    totals: top(total, count),
  }
}

async function main() {
  const upstream = await startChild(here('./upstream.ts'))
  const idp = await startIdp({ accessTokenTtl: ACCESS_TOKEN_TTL, clients: [] })
  let server: Child
  let target: Target
  let stop: () => Promise<void>
  if (kind === 'bare' || kind === 'floor') {
    server = await startChild(here(kind === 'bare' ? './bare-proxy.ts' : './floor-server.ts'), {
      env: { NODE_ENV: 'production', BENCH_UPSTREAM: upstream.url },
    })
    target = {
      key: 'bare',
      name: 'bare',
      url: `${server.url}/api/items`,
      headers: async () => CSRF,
    }
    stop = () => server.stop()
  } else {
    const cluster = kind === 'cluster' ? await startBenchCluster() : undefined
    const under = await startStore(kind, idp, upstream, undefined, '', {
      clusterSeeds: cluster?.seeds,
    })
    server = under.bff
    target = under.target
    const sessions = Number(process.env.BENCH_SESSIONS ?? 0)
    if (sessions > 0) {
      const login = await target.headers()
      const cookies = await server.call<string[]>('mint', {
        cookie: sessionCookieValue(login.cookie!),
        count: sessions,
        from: 0,
      })
      target = { ...target, headers: async () => CSRF, cookies, server }
      if (sessions > 1) await callEachOnce(target)
    }
    stop = async () => {
      await under.stop()
      await cluster?.stop()
    }
  }
  try {
    const firstCalls = Number(process.env.BENCH_FIRST_CALLS ?? 0)
    if (firstCalls > 0) return await profileFirstCalls(server, target, firstCalls)
    await measure(target, 3)
    // BENCH_PERF=1: no V8 profile (its sampler skews what an outside profiler such as perf sees).
    if (process.env.BENCH_PERF) {
      const slice = await measure({ ...target, server }, seconds)
      console.log(
        `${kind}: ${(slice.cpuMicros / slice.requests).toFixed(1)} µs CPU per call, ${(slice.systemMicros / slice.requests).toFixed(1)} in the kernel`
      )
      return
    }
    if (process.env.BENCH_HEAP) return await profileAllocations(server, target)
    await server.call('profileStart')
    const slice = await measure({ ...target, server }, seconds)
    const profile = await server.call<CpuProfile>('profileStop')
    mkdirSync(here('./results'), { recursive: true })
    const file = here(`./results/profile-${kind}-${new Date().toISOString()}.cpuprofile`)
    writeFileSync(file, JSON.stringify(profile))
    const { busy, functions, files } = selfTimes(profile)
    const perCall = (micros: number) =>
      ((micros / slice.requests) * (slice.cpuMicros / busy)).toFixed(1)
    console.log(
      `${kind}: ${slice.requests} calls in ${seconds} s, ${(slice.cpuMicros / slice.requests).toFixed(1)} µs CPU per call, ${slice.non2xx} non-2xx, ${slice.newCookies} new cookies; profile ${file}`
    )
    console.log('\nself time by file (µs per call, share of busy samples):')
    for (const [name, micros] of files) {
      console.log(
        `  ${perCall(micros).padStart(6)}  ${((100 * micros) / busy).toFixed(1).padStart(5)}%  ${name}`
      )
    }
    console.log('\nself time by function:')
    for (const [name, micros] of functions) {
      console.log(
        `  ${perCall(micros).padStart(6)}  ${((100 * micros) / busy).toFixed(1).padStart(5)}%  ${name}`
      )
    }
  } finally {
    await stop()
    await idp.stop()
    await upstream.stop()
  }
}

interface HeapNode {
  callFrame: ProfileNode['callFrame']
  selfSize: number
  children: HeapNode[]
}

/** Bytes allocated per call under the load, by function and by file (the top 40 of each). */
async function profileAllocations(server: Child, target: Target) {
  await server.call('heapStart')
  const slice = await measure({ ...target, server }, seconds)
  const profile = await server.call<{ head: HeapNode }>('heapStop')
  mkdirSync(here('./results'), { recursive: true })
  const file = here(`./results/heap-${kind}-${new Date().toISOString()}.heapprofile`)
  writeFileSync(file, JSON.stringify(profile))
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  let total = 0
  const walk = (node: HeapNode) => {
    const { functionName, url, lineNumber } = node.callFrame
    const where = url ? shortUrl(url) : functionName
    const name = `${functionName || '(anonymous)'} ${where}:${lineNumber + 1}`
    byFunction.set(name, (byFunction.get(name) ?? 0) + node.selfSize)
    byFile.set(where, (byFile.get(where) ?? 0) + node.selfSize)
    total += node.selfSize
    node.children.forEach(walk)
  }
  walk(profile.head)
  const perCall = (bytes: number) => (bytes / slice.requests).toFixed(0).padStart(7)
  console.log(
    `${kind}: ${slice.requests} calls in ${seconds} s, ${perCall(total).trim()} bytes allocated per call (sampled); profile ${file}`
  )
  for (const [title, map] of [
    ['by file', byFile],
    ['by function', byFunction],
  ] as const) {
    console.log(`\nbytes per call ${title}:`)
    for (const [name, bytes] of [...map].sort((a, b) => b[1] - a[1]).slice(0, 40)) {
      console.log(`  ${perCall(bytes)}  ${name}`)
    }
  }
}

/** Profiles N sessions' first calls, then their second calls; prints what the first cost more. */
async function profileFirstCalls(server: Child, target: Target, count: number) {
  await measure(target, 3)
  const login = await target.headers()
  const mint = (from: number) =>
    server.call<string[]>('mint', { cookie: sessionCookieValue(login.cookie!), count, from })
  // As bench/sessions.ts: two unprofiled passes over other sessions first, so that only the
  // sessions are new (not the code path of a call on a new connection).
  let cookies = await mint(2_000_000)
  const agent = new Agent({ keepAlive: true, maxSockets: 1 }) // as bench/sessions.ts
  const call = async () => {
    let newCookies = 0
    for (const [i, cookie] of cookies.entries()) {
      const { status, setCookie } = await timedGet(target.url, { ...CSRF, cookie }, agent)
      if (status !== 200) throw new Error(`a minted session answered ${status}`)
      if (setCookie?.length) newCookies++
      cookies[i] = applySetCookie(cookie, setCookie)
    }
    return newCookies
  }
  await call()
  await call()
  cookies = await mint(1_000_000)
  const pass = async () => {
    const before = await server.call<NodeJS.CpuUsage>('cpu')
    await server.call('profileStart')
    const newCookies = await call()
    const profile = await server.call<CpuProfile>('profileStop')
    const after = await server.call<NodeJS.CpuUsage>('cpu')
    const cpu = after.user + after.system - before.user - before.system
    const times = selfTimes(profile, Infinity)
    const scale = cpu / times.busy / count
    return {
      newCookies,
      cpuPerCall: cpu / count,
      perCall: new Map(times.functions.map(([f, m]) => [f, m * scale])),
      totals: new Map(times.totals.map(([f, m]) => [f, m * scale])),
    }
  }
  const first = await pass()
  const second = await pass()
  console.log(
    `${kind}: ${count} sessions, CPU per call ${first.cpuPerCall.toFixed(1)} µs first, ` +
      `${second.cpuPerCall.toFixed(1)} µs second (+${(first.cpuPerCall - second.cpuPerCall).toFixed(1)}); ` +
      `answers with Set-Cookie ${first.newCookies} first, ${second.newCookies} second`
  )
  printMore('self time the first call spent more, by function', first.perCall, second.perCall, 40)
  printMore(
    'total time (self and callees) the first call spent more',
    first.totals,
    second.totals,
    50
  )
}

/** The functions whose µs per call grew most from `second` to `first`. */
function printMore(
  title: string,
  first: Map<string, number>,
  second: Map<string, number>,
  n: number
) {
  const more = [...first].map(([f, us]) => [f, us - (second.get(f) ?? 0)] as const)
  console.log(`\n${title} (µs per call):`)
  for (const [name, us] of more.sort((a, b) => b[1] - a[1]).slice(0, n))
    console.log(`  ${us.toFixed(1).padStart(6)}  ${name}`)
}

await main()
