/**
 * A test file's own Redis Cluster (test/helpers/redis-cluster.ts): started before its tests,
 * stopped after them, with an ioredis Cluster client on it.
 */
import { Cluster } from 'ioredis'
import { afterAll, beforeAll } from 'vitest'
import { startRedisCluster, type LocalRedisCluster } from './redis-cluster.ts'

export function clusterClient(cluster: LocalRedisCluster): Cluster {
  return new Cluster(
    cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    { redisOptions: { maxRetriesPerRequest: 1 } }
  )
}

/**
 * `nodeTimeoutMs`: how long a node may not answer before the others fail it over. Long by default
 * (5 s), so a machine busy with other tests does not fail a primary over by accident.
 */
export function useRedisCluster(options: { nodeTimeoutMs?: number } = {}): {
  cluster: () => LocalRedisCluster
  redis: () => Cluster
} {
  let cluster: LocalRedisCluster | undefined
  let redis: Cluster | undefined
  beforeAll(async () => {
    cluster = await startRedisCluster({ nodeTimeoutMs: options.nodeTimeoutMs ?? 5000 })
    redis = clusterClient(cluster)
    await new Promise<void>((resolve, reject) => {
      redis!.once('ready', resolve)
      redis!.once('error', reject)
    })
  }, 60_000)
  afterAll(async () => {
    redis?.disconnect()
    await cluster?.stop()
  })
  return { cluster: () => cluster!, redis: () => redis! }
}
