/**
 * Tokens shared by every instance through Redis (the BFF's client-credentials tokens, sessions'
 * exchanged tokens; see core/tokens/shared-token.ts): a token is kept under its key until it
 * expires, and when it is due for renewal a lock with expiry picks the one instance that asks the
 * IdP; the others wait for what it publishes, as for a refresh (redis-coordination.ts). Keys:
 * `<prefix>token:<key>`, `<prefix>token-lock:<key>`: one key per command or script, so one slot on
 * a Redis Cluster.
 */
import { LOCK_POLL_MS, RELEASE_LOCK } from './redis-coordination.ts'
import type { RedisClient } from './redis-keys.ts'
import type { SharedToken, SharedTokenCoordinator } from '../../core/tokens/shared-token.ts'

export interface SharedTokenCoordinatorOptions {
  /** Key prefix, e.g. `bff:`. */
  prefix?: string
  /**
   * How long one instance may hold a key's lock, in milliseconds: longer than a grant with its
   * retries. If the holder dies, another takes over once it expires; a caller waits at most twice
   * this long.
   * @default 15000
   */
  lockMs?: number
  /** Epoch milliseconds. */
  now?: () => number
}

export function redisSharedTokenCoordinator(
  redis: RedisClient,
  options: SharedTokenCoordinatorOptions = {}
): SharedTokenCoordinator {
  const prefix = options.prefix ?? 'bff:'
  const lockMs = options.lockMs ?? 15_000
  const now = options.now ?? Date.now

  async function current(tokenKey: string): Promise<SharedToken | null> {
    const raw = await redis.get(tokenKey)
    if (raw === null) return null
    const token = JSON.parse(raw) as SharedToken
    return token.renewAt * 1000 > now() ? token : null
  }

  return {
    async tokenOnce(key, grant) {
      const tokenKey = `${prefix}token:${key}`
      const lockKey = `${prefix}token-lock:${key}`
      const holder = crypto.randomUUID()
      const giveUpAt = now() + 2 * lockMs
      for (;;) {
        const shared = await current(tokenKey)
        if (shared) return shared
        if ((await redis.set(lockKey, holder, 'PX', lockMs, 'NX')) === 'OK') {
          try {
            const raced = await current(tokenKey)
            if (raced) return raced
            const token = await grant()
            const ttl = Math.max(1, Math.floor(token.expiresAt * 1000 - now()))
            await redis.set(tokenKey, JSON.stringify(token), 'PX', ttl)
            return token
          } finally {
            await redis.eval(RELEASE_LOCK, 1, lockKey, holder).catch(() => {})
          }
        }
        if (now() > giveUpAt) throw new Error('timed out waiting for the shared token lock')
        await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
      }
    },
  }
}
