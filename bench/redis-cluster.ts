/**
 * The bench's own Redis Cluster for (e'): 3 primaries with a replica each, started from the Debian
 * `redis-server` package on free loopback ports by the tests' helper (test/helpers/redis-cluster.ts:
 * no persistence, a temporary directory), so nothing touches the shared Redis on 6379.
 *
 * The bench ends in many ways besides its `finally` (its time budget's `process.exit`, a thrown
 * error, Ctrl-C, a kill): the nodes are not children that die with it, so every way out kills them
 * and removes their directory here.
 */
import { execFileSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { startRedisCluster, type LocalRedisCluster } from '../test/helpers/redis-cluster.ts'

/** Whether redis-server and redis-cli can be run here (the cluster needs both). */
export function redisClusterInstalled(): boolean {
  try {
    for (const binary of ['redis-server', 'redis-cli']) {
      execFileSync(binary, ['--version'], { stdio: 'ignore', timeout: 5000 })
    }
    return true
  } catch {
    return false
  }
}

export interface BenchCluster {
  /** `BFF_REDIS_URL` for BFF_REDIS_MODE=cluster: every node, comma-separated. */
  seeds: string
  stop(): Promise<void>
}

export async function startBenchCluster(): Promise<BenchCluster> {
  let cluster: LocalRedisCluster | undefined
  let stopped = false
  // Synchronous, for `exit`: SIGKILL goes out at once (kill() signals before it awaits the exit).
  const killNow = () => {
    if (!cluster || stopped) return
    stopped = true
    for (const node of cluster.nodes) void node.kill()
    rmSync(cluster.dir, { recursive: true, force: true })
  }
  const stop = async () => {
    if (!cluster || stopped) return
    stopped = true
    await cluster.stop()
  }
  const onSignal = (signal: NodeJS.Signals) => {
    // A signal during the start waits for it (a few seconds) so the nodes are known, then stops.
    void starting
      .catch(() => {})
      .then(stop)
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143))
  }
  // 15 s, Redis's default: a node slow to answer while the bench loads both cores is not failed
  // over in the middle of a round (the tests' 1–5 s would).
  const starting = startRedisCluster({ nodeTimeoutMs: 15_000 })
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', killNow)
  const forget = () => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    process.off('exit', killNow)
  }
  try {
    cluster = await starting
  } catch (err) {
    forget()
    throw err
  }
  return {
    seeds: cluster.seeds,
    async stop() {
      await stop()
      forget()
    },
  }
}
