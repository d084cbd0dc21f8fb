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

export function useRedisCluster(): { cluster: () => LocalRedisCluster; redis: () => Cluster } {
  let cluster: LocalRedisCluster | undefined
  let redis: Cluster | undefined
  beforeAll(async () => {
    cluster = await startRedisCluster()
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
