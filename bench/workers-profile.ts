/**
 * Where a session's first call on a fresh Workers isolate spends its CPU: a V8 CPU profile of that
 * one call, taken through workerd's inspector (a development aid next to bench/workers-cold.ts).
 * `npx tsx bench/workers-profile.ts [durable-object|cookie|bare] [together|apart] [out]` prints the
 * functions with the most self time and the scripts they are in, and writes the profile (a
 * .cpuprofile for Chrome's DevTools). Sampling slows the isolate: read it for where, not how much.
 */
import { writeFileSync } from 'node:fs'
import WebSocket from 'ws'
import { startIdp } from '../src/demo/idp.ts'
import { buildWorker } from '../test/adapters/workers/build.ts'
import { freePort } from '../test/helpers/upstream.ts'
import { startChild } from './child.ts'
import { timedGet } from './load.ts'
import { here } from './stores.ts'
import { bareSetup } from './workers-bare.ts'
import { bffSetup, type WorkersLayout, type WorkersStore } from './workers-cold.ts'
import { start } from './workerd.ts'

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** A tiny DevTools protocol client. */
async function connect(url: string) {
  const socket = new WebSocket(url)
  await new Promise((resolve, reject) => {
    socket.once('open', resolve)
    socket.once('error', reject)
  })
  let next = 1
  const pending = new Map<number, (result: unknown) => void>()
  socket.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: unknown }
    if (message.id !== undefined) pending.get(message.id)?.(message.result)
  })
  return {
    post<T>(method: string, params: Record<string, unknown> = {}) {
      const id = next++
      socket.send(JSON.stringify({ id, method, params }))
      return new Promise<T>((resolve) => pending.set(id, resolve as (r: unknown) => void))
    },
    close: () => socket.close(),
  }
}

const which = (process.argv[2] ?? 'durable-object') as WorkersStore | 'bare'
const layout = (process.argv[3] ?? 'together') as WorkersLayout
const out = process.argv[4] ?? `/tmp/workers-first-call-${which}-${layout}.cpuprofile`
const upstream = await startChild(here('./upstream.ts'))
const idp = await startIdp({ accessTokenTtl: 3600, clients: [] })
try {
  const bff =
    which === 'bare'
      ? undefined
      : await bffSetup(which, layout, await buildWorker(), idp, upstream.url)
  const setup = bff?.setup ?? (await bareSetup(upstream.url))
  const inspectorPort = await freePort()
  const { mf, url } = await start(setup, inspectorPort)
  try {
    const inspector = await connect(`ws://127.0.0.1:${inspectorPort}/${setup.options.name}`)
    await inspector.post('Profiler.enable')
    await inspector.post('Profiler.setSamplingInterval', { interval: 50 })
    await inspector.post('Profiler.start')
    const call = await timedGet(`${url}/api/items`, setup.headers)
    const { profile } = await inspector.post<{ profile: Profile }>('Profiler.stop')
    inspector.close()
    writeFileSync(out, JSON.stringify(profile))
    console.log(`status ${call.status}, wall ${call.ms.toFixed(2)} ms, profile in ${out}`)
    report(profile)
  } finally {
    await mf.dispose()
    await bff?.stop()
  }
} finally {
  await idp.stop()
  await upstream.stop()
}
process.exit(0)

function report(profile: Profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + profile.timeDeltas[i]!))
  const byFunction = new Map<string, number>()
  const byScript = new Map<string, number>()
  let total = 0
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame
    const name = `${functionName || '(anonymous)'} ${url.split('/').pop()}:${lineNumber + 1}`
    byFunction.set(name, (byFunction.get(name) ?? 0) + us)
    byScript.set(url || functionName, (byScript.get(url || functionName) ?? 0) + us)
    total += us
  }
  const top = (map: Map<string, number>, n: number) =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, n)
  console.log(`sampled ${(total / 1000).toFixed(2)} ms`)
  for (const [name, us] of top(byScript, 8)) console.log(`  ${(us / 1000).toFixed(2)} ms  ${name}`)
  console.log('functions by self time:')
  for (const [name, us] of top(byFunction, 30)) {
    console.log(`  ${(us / 1000).toFixed(2)} ms  ${name}`)
  }
}
