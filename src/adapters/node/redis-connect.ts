/**
 * Which Redis the Node server uses and how it connects: `BFF_REDIS_MODE` picks one node
 * (`single`), a Redis Cluster (`cluster`: BFF_REDIS_URL lists seed nodes) or a primary found
 * through Sentinel (`sentinel`: BFF_REDIS_URL lists the sentinels, BFF_REDIS_SENTINEL_NAME names
 * the primary they watch). Read with the other Node settings (settings.ts); the client is made in
 * start.ts.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis'
import type { Env } from '../../core/config/env.ts'

export const REDIS_MODES = ['single', 'cluster', 'sentinel'] as const
export type RedisMode = (typeof REDIS_MODES)[number]

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'

export interface RedisSettings {
  /**
   * `BFF_REDIS_URL` as set. The `redis` store connects to it (default `DEFAULT_REDIS_URL`); with
   * the `cookie` store, setting it puts large sessions and the shared lists in Redis. In `cluster`
   * and `sentinel` modes a comma-separated list.
   */
  redisUrl?: string
  /** `BFF_REDIS_MODE`. Default `single`. */
  redisMode: RedisMode
  /** `BFF_REDIS_SENTINEL_NAME`: the primary's name at the sentinels (sentinel mode). */
  redisSentinelName?: string
  /** `BFF_REDIS_SENTINEL_PASSWORD`: the sentinels' own password, when they require one. */
  redisSentinelPassword?: string
}

/** The Redis settings, each problem pushed (never echoing a URL: it may carry a password). */
export function readRedisSettings(env: Env, problems: string[]): RedisSettings {
  const get = (name: string) => {
    const value = env[name]?.trim()
    return value ? value : undefined
  }
  const redisUrl = get('BFF_REDIS_URL')
  const mode = get('BFF_REDIS_MODE') ?? 'single'
  let redisMode: RedisMode = 'single'
  if ((REDIS_MODES as readonly string[]).includes(mode)) redisMode = mode as RedisMode
  else problems.push(`BFF_REDIS_MODE must be one of ${REDIS_MODES.join(', ')}, got "${mode}"`)
  const redisSentinelName = get('BFF_REDIS_SENTINEL_NAME')
  const redisSentinelPassword = get('BFF_REDIS_SENTINEL_PASSWORD')

  if (redisUrl !== undefined && redisMode === 'single') {
    // One URL, read as before modes existed (a comma may be part of its password).
    if (!/^rediss?:\/\//.test(redisUrl)) {
      problems.push('BFF_REDIS_URL must start with redis:// or rediss://')
    } else if (/,\s*rediss?:\/\//.test(redisUrl)) {
      problems.push('BFF_REDIS_URL lists several URLs: set BFF_REDIS_MODE to cluster or sentinel')
    }
  } else if (redisUrl !== undefined) {
    const urls = redisUrl.split(',').map((url) => url.trim())
    const parsed = urls.map((url) => /^rediss?:\/\//.test(url) && URL.canParse(url) && new URL(url))
    if (urls.some((url) => !/^rediss?:\/\//.test(url))) {
      problems.push('BFF_REDIS_URL must start with redis:// or rediss://')
    } else if (parsed.some((url) => !url || !url.hostname)) {
      problems.push('BFF_REDIS_URL must list URLs with a host, e.g. redis://10.0.0.1:6379')
    } else {
      const nodes = parsed as URL[]
      const same = (part: (url: URL) => string) => new Set(nodes.map(part)).size === 1
      if (!same((url) => `${url.protocol}${url.username}:${url.password}${url.pathname}`)) {
        problems.push('BFF_REDIS_URL must give every URL the same scheme, credentials and database')
      }
      if (redisMode === 'cluster' && !/^\/?0?$/.test(nodes[0]!.pathname)) {
        problems.push('BFF_REDIS_URL cannot name a database in cluster mode (a Cluster has only 0)')
      }
    }
  } else if (redisMode !== 'single') {
    problems.push(`BFF_REDIS_URL is required with BFF_REDIS_MODE=${redisMode}`)
  }
  if (redisMode === 'sentinel' && redisSentinelName === undefined) {
    problems.push('BFF_REDIS_SENTINEL_NAME is required with BFF_REDIS_MODE=sentinel')
  }
  if (redisMode !== 'sentinel' && redisSentinelName !== undefined) {
    problems.push('BFF_REDIS_SENTINEL_NAME is set but BFF_REDIS_MODE is not sentinel')
  }
  return {
    redisUrl,
    redisMode,
    ...(redisSentinelName ? { redisSentinelName } : {}),
    ...(redisSentinelPassword ? { redisSentinelPassword } : {}),
  }
}

/** What every connection of the server gets, whatever the mode. */
const COMMON: RedisOptions = {
  // Fail fast while Redis is away: requests answer 503 instead of queueing without bound.
  maxRetriesPerRequest: 1,
  connectTimeout: 2000,
  // A hung Redis must not hang requests: every command gives up after 2 s (answering 503).
  commandTimeout: 2000,
}

/** A connection to one node (single mode, or the primary Sentinel names). */
const SINGLE: RedisOptions = {
  ...COMMON,
  enableOfflineQueue: false,
  // Commands issued in one turn of the event loop leave in one write (and their answers come
  // back in one read): under load, one socket write per request fewer.
  enableAutoPipelining: true,
}

/*
 * For pub/sub over these clients (a session-end bus): on a Cluster, SUBSCRIBE on the Cluster
 * client listens at one node while PUBLISH reaches every node through the cluster bus (correct,
 * but every node carries every message); sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7, ioredis
 * `shardedSubscribers: true`) keeps a channel on its slot's shard, and a subscriber must follow
 * that shard through failovers. With Sentinel, a subscriber is a `duplicate()` of the client and
 * re-subscribes after a failover (ioredis `autoResubscribe`), missing what was published meanwhile.
 */

/**
 * The ioredis client for these settings: a `Redis` (single, sentinel) or a `Cluster`. Errors are
 * swallowed on the client (they reach requests as 503 and `/bff/health`).
 */
export function connectRedis(settings: RedisSettings): Redis | Cluster {
  if (settings.redisMode === 'single') {
    // The URL as ioredis reads it (database, TLS, options in the query), as before modes existed.
    const client = new Redis(settings.redisUrl ?? DEFAULT_REDIS_URL, SINGLE)
    client.on('error', () => {}) // reported through /bff/health and 503s
    return client
  }
  const urls = settings.redisUrl!.split(',').map((url) => new URL(url.trim()))
  const first = urls[0]!
  const tls = first.protocol === 'rediss:' ? { tls: {} } : {}
  const auth = {
    ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
    ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
  }
  const hostPort = (url: URL, port: number): { host: string; port: number } => ({
    // URL keeps an IPv6 address in brackets; sockets want it without.
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(url.port || port),
  })
  let client: Redis | Cluster
  if (settings.redisMode === 'cluster') {
    client = new Cluster(
      urls.map((url) => hostPort(url, 6379)),
      {
        // The offline queue would hold commands while the cluster re-reads its slots after a
        // failover; without it they fail at once (503) and the next request finds the new primary.
        enableOfflineQueue: false,
        enableAutoPipelining: true,
        // A failover or a slot moving answers MOVED/TRYAGAIN/CLUSTERDOWN: retried after 100 ms,
        // within each command's 2 s.
        retryDelayOnFailover: 100,
        retryDelayOnClusterDown: 100,
        retryDelayOnTryAgain: 100,
        slotsRefreshTimeout: 2000,
        // The slot map is read again at least this often, besides on every MOVED.
        slotsRefreshInterval: 5000,
        clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
        redisOptions: { ...COMMON, ...auth, ...tls },
      }
    )
  } else {
    client = new Redis({
      ...SINGLE,
      sentinels: urls.map((url) => hostPort(url, 26379)),
      name: settings.redisSentinelName!,
      ...(settings.redisSentinelPassword
        ? { sentinelPassword: settings.redisSentinelPassword }
        : {}),
      ...(tls.tls ? { enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
      // No `failoverDetector`: its disconnect on +switch-master can land while the client is
      // reconnecting after the primary died, and ends the client for good (seen in
      // test/redis-cluster/sentinel.test.ts). Redis closes every client's connection when a
      // failover demotes or kills the primary; the client then asks the sentinels again.
      ...auth,
      ...tls,
      db: Number(first.pathname.slice(1) || 0),
    })
  }
  client.on('error', () => {}) // reported through /bff/health and 503s; avoid an unhandled event
  return client
}

/** Waits up to 2 s for the client's first connection (or the cluster's slot map). */
export function firstConnection(client: Redis | Cluster): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2000)
    client.once('ready', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}
