/**
 * `npx tsx bench/profile.ts [cookie|memory|redis|bare|floor] [seconds]`: where the CPU of a proxied call
 * goes. Loads one target as the bench does (32 connections of autocannon, the same upstream and
 * login) and takes a V8 CPU profile of the server over the load alone (no start-up, login or
 * idle time), then prints its self time by function and by source file, as a share of the
 * profile's busy samples and as µs per call. Writes the profile to bench/results/ for DevTools.
 * A development aid: what it prints depends on the machine; compare two commits in one sitting.
 * BENCH_SESSIONS=N: the load goes round robin over N sessions minted from the login, each called
 * once before (as the many-sessions rows of bench/sessions.ts do).
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { startIdp } from '../src/demo/idp.ts'
import { startChild, type Child } from './child.ts'
import { sessionCookieValue } from './cookies.ts'
import { CSRF, callEachOnce, measure, type Target } from './load.ts'
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
function selfTimes(profile: CpuProfile) {
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
  const top = (map: Map<string, number>, n: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, n)
  return { busy, functions: top(byFunction, 40), files: top(byFile, 40) }
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
    const under = await startStore(kind, idp, upstream)
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
    stop = () => under.stop()
  }
  try {
    await measure(target, 3)
    // BENCH_PERF=1: no V8 profile (its sampler skews what an outside profiler such as perf sees).
    if (process.env.BENCH_PERF) {
      const slice = await measure({ ...target, server }, seconds)
      console.log(
        `${kind}: ${(slice.cpuMicros / slice.requests).toFixed(1)} µs CPU per call, ${(slice.systemMicros / slice.requests).toFixed(1)} in the kernel`
      )
      return
    }
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

await main()
