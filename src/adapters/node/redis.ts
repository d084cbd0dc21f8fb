/**
 * The package's `./redis` entry: the Redis session store and the coordination it shares between
 * instances (revocations, the refresh lock, the logout-token replay guard, shared tokens, the
 * session-end bus), over an ioredis client: a `Redis` (one node, or Sentinel's primary) or a
 * `Cluster`.
 */
export {
  redisStore,
  redisSessionKeyPrefix,
  type RedisClient,
  type RedisStoreOptions,
} from './redis-store.ts'
export {
  redisSessionCache,
  type RedisSessionCache,
  type RedisSessionCacheOptions,
} from './redis-cache.ts'
export {
  redisClusterSessionCache,
  type RedisClusterSessionCacheOptions,
} from './redis-cluster-cache.ts'
export {
  redisRefreshCoordinator,
  redisReplayGuard,
  redisRevocationList,
  type RedisListOptions,
  type RefreshCoordinatorOptions,
} from './redis-coordination.ts'
export {
  redisSharedTokenCoordinator,
  type SharedTokenCoordinatorOptions,
} from './redis-shared-tokens.ts'
export {
  redisSessionEndBus,
  type RedisSessionEndBus,
  type RedisSessionEndBusOptions,
} from './redis-session-ends.ts'
