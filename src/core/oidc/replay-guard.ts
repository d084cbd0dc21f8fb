/**
 * Remembers one-time values (a logout token's `jti`) so each is accepted once. Shared across
 * instances when backed by Redis; per process otherwise.
 */
export interface ReplayGuard {
  /** True the first time `key` is claimed within `ttlSeconds`, false on every later claim. */
  claim(key: string, ttlSeconds: number): Promise<boolean>
  /** Gives a claimed key back, so a request that failed after claiming can be retried. */
  release(key: string): Promise<void>
}

export function memoryReplayGuard(now: () => number = Date.now): ReplayGuard {
  const seen = new Map<string, number>()
  return {
    async claim(key, ttlSeconds) {
      const t = now()
      // Expired entries are dropped as new ones arrive: no timers, bounded by the claim rate.
      for (const [k, until] of seen) {
        if (until > t) break
        seen.delete(k)
      }
      const until = seen.get(key)
      if (until !== undefined && until > t) return false
      seen.delete(key)
      seen.set(key, t + ttlSeconds * 1000)
      return true
    },
    async release(key) {
      seen.delete(key)
    },
  }
}
