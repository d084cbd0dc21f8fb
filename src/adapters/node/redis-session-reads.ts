/**
 * Reading a session through the in-process cache (redis-cache.ts, or redis-cluster-cache.ts on a
 * Cluster), and keeping that cache right around writes: shared by the single-node and the Cluster
 * layouts of the redis store, which differ in their keys and scripts, not in this.
 */
import type { Session } from '../../core/session/types.ts'
import type { RedisSessionCache } from './redis-cache.ts'

export interface CachedSessionReads {
  /** The stored session, from the cache when it holds it; null when absent or expired. */
  read(id: string): Promise<Session | null>
  /** Runs a write with this session's cached copy (every copy, without an id) forgotten before and after it. */
  evicting<T>(id: string | undefined, write: () => Promise<T>): Promise<T>
}

export function cachedSessionReads(options: {
  cache: RedisSessionCache | undefined
  /** The key as Redis reports it to the cache: with the client's keyPrefix. */
  cacheKey: (id: string) => string
  /** The session's JSON from Redis, bounded in time. */
  fetch: (id: string) => Promise<string | null>
  /** Epoch milliseconds. */
  now: () => number
}): CachedSessionReads {
  const { cache, cacheKey, fetch, now } = options
  return {
    async read(id) {
      let session = cache?.get(cacheKey(id))
      if (!session) {
        const ticket = cache?.ticket()
        const raw = await fetch(id)
        if (raw === null) return null
        session = JSON.parse(raw) as Session
        if (ticket !== undefined) cache!.keep(cacheKey(id), session, ticket)
      }
      // Redis expires the key on its own clock; this guards the millisecond in between.
      return session.expiresAt * 1000 <= now() ? null : session
    },
    async evicting(id, write) {
      cache?.evict(id && cacheKey(id))
      try {
        return await write()
      } finally {
        cache?.evict(id && cacheKey(id))
      }
    },
  }
}
