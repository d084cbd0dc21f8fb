/**
 * `npx tsx bench/compare.ts [--store=memory] <checkout>...`: the BFFs of several checkouts (`.`
 * for this one, an older commit's worktree, say), with the bare proxy, in the same interleaved
 * rounds as `npm run bench` (BENCH_SECONDS rounds of one second each). Successive runs of the bench on
 * these VMs differ by a third, so a regression can only be told from noise within one run.
 * Another checkout needs its dependencies (a symlinked node_modules will do) and a
 * bench/bff-server.ts that speaks bench/child.ts's protocol and imports start.ts, not server.ts
 * (from 2026-12-02 on): it is bundled as the bench runs it (bench/built.ts), and a bundled
 * server.ts would take itself for the program and start the demo.
 */
import { resolve } from 'node:path'
import { startIdp } from '../src/demo/idp.ts'
import { startChild } from './child.ts'
import { CSRF, againstBare, loadAll, median, merge, round, type Target } from './load.ts'
import { ACCESS_TOKEN_TTL, here, startStore, type StoreKind } from './stores.ts'

const args = process.argv.slice(2)
const store = (args.find((a) => a.startsWith('--store='))?.slice(8) ?? 'memory') as StoreKind
const checkouts = args.filter((a) => !a.startsWith('--'))
if (!checkouts.length)
  throw new Error('usage: npx tsx bench/compare.ts [--store=memory] <checkout>...')

const upstream = await startChild(here('./upstream.ts'))
const idp = await startIdp({ accessTokenTtl: ACCESS_TOKEN_TTL, clients: [] })
const bare = await startChild(here('./bare-proxy.ts'), {
  env: { NODE_ENV: 'production', BENCH_UPSTREAM: upstream.url },
})
const bffs = await Promise.all(
  checkouts.map((dir, i) =>
    startStore(store, idp, upstream, undefined, `-${i}`, {
      file: resolve(dir, 'bench/bff-server.ts'),
    })
  )
)
try {
  const targets: Target[] = [
    {
      key: 'bare',
      name: 'bare proxy',
      url: `${bare.url}/api/items`,
      headers: async () => CSRF,
      server: bare,
    },
    ...bffs.map((bff, i) => ({
      ...bff.target,
      key: `bff-${i}`,
      name: `${checkouts[i]} (${store})`,
    })),
  ]
  const slices = await loadAll(targets)
  for (const target of targets) {
    const run = merge(target.name, slices.get(target.key)!)
    const { ratios, addedMs } = againstBare(slices.get(target.key), slices.get('bare'))
    const cpu = slices.get(target.key)!.map((s) => s.cpuMicros / s.requests)
    const system = slices.get(target.key)!.map((s) => s.systemMicros / s.requests)
    console.log(
      `${target.name}: ${run.requestsPerSecond} req/s, CPU per call median ${round(median(cpu), 1)} µs ` +
        `(${round(Math.min(...cpu), 1)}-${round(Math.max(...cpu), 1)}; kernel ${round(median(system), 1)}), vs bare ${round(median(ratios))}, ` +
        `p99 added ${round(median(addedMs))} ms`
    )
  }
} finally {
  for (const bff of bffs) await bff.stop()
  await bare.stop()
  await idp.stop()
  await upstream.stop()
}
