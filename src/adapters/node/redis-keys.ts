/**
 * Where a session lives in Redis, in each layout: shared by the store, the cache and the refresh
 * coordinator, which reads a session from Redis itself, past any cache.
 */
import type { Cluster, Redis } from 'ioredis'

/** An ioredis client: one node (or a primary found through Sentinel), or a Cluster. */
export type RedisClient = Redis | Cluster

/**
 * A session's key under `prefix` (the client's keyPrefix is added by ioredis). On a Cluster the
 * session id is the key's hash tag, so a session's keys share a slot and sessions spread over all.
 */
export function redisSessionKey(prefix: string, id: string, cluster = false): string {
  return cluster ? `${prefix}{session:${id}}` : `${prefix}session:${id}`
}

/**
 * The full prefix of the session keys in Redis (the client's keyPrefix included): what a
 * `redisSessionCache` shared with stores on this client and `prefix` must track.
 */
export function redisSessionKeyPrefix(redis: RedisClient, prefix: string): string {
  return `${redis.options.keyPrefix ?? ''}${prefix}${redis.isCluster ? '{session:' : 'session:'}`
}
