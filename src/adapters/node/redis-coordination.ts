/**
 * What a cluster shares in Redis besides the sessions themselves: the revocation list and
 * generation ledger `cookie` mode needs (no server holds those sessions), the replay guard for
 * logout tokens, and the refresh coordinator that makes one instance refresh a session while the
 * others wait for its result. Every key expires.
 *
 * On a Redis Cluster: every command and script here touches one key, so one slot, whatever the
 * layout; the only multi-key read (a revocation check's MGET) becomes one GET per key there.
 */
import type { ReplayGuard } from '../../core/oidc/replay-guard.ts'
import {
  checkedScopes,
  revokedBy,
  revokedScopes,
  type RevocationList,
} from '../../core/session/revocations.ts'
import type { Session, SessionStore } from '../../core/session/types.ts'
import type { RefreshCoordinator } from '../../core/tokens/refresh-coordinator.ts'
import { redisSessionKey, type RedisClient } from './redis-keys.ts'

export interface RedisListOptions {
  /** Key prefix, e.g. `bff:`. */
  prefix?: string
  /** Epoch milliseconds. */
  now?: () => number
}

// KEYS: generation key. ARGV: generation, ttl ms. Only ever raises the stored generation.
const RAISE_GENERATION = `
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
`

/*
 * Key layout (P = `prefix` + `revoked:`), every key expiring with what it revokes:
 *   P id:<id>                    a logged-out session
 *   P sid:<sid>, P sub:<sub>     a revocation without idp (the time it was made, epoch ms)
 *   P sid@<scope>:<sid>, likewise for sub: one with an idp, under that IdP's name and under the
 *                                empty name of sessions with no recorded idp (`revokedScopes`)
 *   P gen:<id>                   the newest generation of a session handed out
 * The plain keys are those from before IdPs were told apart, so revocations already in Redis stay
 * valid. `@` keeps the two apart; the scope is URI-encoded, so no `:` in it can shift the sid.
 */
export function redisRevocationList(
  redis: RedisClient,
  options: RedisListOptions = {}
): RevocationList {
  const prefix = `${options.prefix ?? 'bff:'}revoked:`
  const now = options.now ?? Date.now
  const ttlMs = (until: number) => Math.max(1000, until * 1000 - now())
  const key = (kind: 'sid' | 'sub', scope: string | null, value: string) =>
    scope === null
      ? `${prefix}${kind}:${value}`
      : `${prefix}${kind}@${encodeURIComponent(scope)}:${value}`

  // The value is the time of the revocation in epoch milliseconds: sessions created later are
  // new logins and stay valid.
  async function revoke(kind: 'sid' | 'sub', value: string, until: number, idp?: string) {
    const at = String(now())
    await Promise.all(
      revokedScopes(idp).map((scope) => redis.set(key(kind, scope, value), at, 'PX', ttlMs(until)))
    )
  }

  return {
    async revokeSession(id, until) {
      await redis.set(`${prefix}id:${id}`, '1', 'PX', ttlMs(until))
    },
    revokeSid: (sid, until, idp) => revoke('sid', sid, until, idp),
    revokeSub: (sub, until, idp) => revoke('sub', sub, until, idp),
    async recordGeneration(id, generation, until) {
      await redis.eval(
        RAISE_GENERATION,
        1,
        `${prefix}gen:${id}`,
        String(generation),
        String(ttlMs(until))
      )
    },
    async latestGeneration(id) {
      return Number((await redis.get(`${prefix}gen:${id}`)) ?? 0)
    },
    async isRevoked(session) {
      const scopes = checkedScopes(session)
      const keys = [
        `${prefix}id:${session.id}`,
        ...scopes.map((scope) => key('sid', scope, session.sid)),
        ...scopes.map((scope) => key('sub', scope, session.sub)),
      ]
      // The keys lie in different slots on a Cluster, where MGET would fail (CROSSSLOT).
      const [id, ...times] = redis.isCluster
        ? await Promise.all(keys.map((k) => redis.get(k)))
        : await redis.mget(...keys)
      return id !== null || times.some((at) => at !== null && revokedBy(Number(at), session))
    },
  }
}

export function redisReplayGuard(redis: RedisClient, options: RedisListOptions = {}): ReplayGuard {
  const prefix = `${options.prefix ?? 'bff:'}once:`
  return {
    async claim(key, ttlSeconds) {
      // SET NX is atomic: of two instances receiving the same token, exactly one wins.
      return (await redis.set(`${prefix}${key}`, '1', 'EX', Math.ceil(ttlSeconds), 'NX')) === 'OK'
    },
    async release(key) {
      await redis.del(`${prefix}${key}`)
    },
  }
}

// KEYS: lock. ARGV: holder token. Releases the lock only if this holder still owns it. Shared
// with the shared-token lock (redis-shared-tokens.ts).
export const RELEASE_LOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`
/** How long a refresh result stays readable for instances that waited or hold an older cookie. */
const REFRESH_RESULT_MS = 30_000
/** How often a waiter looks again while another instance holds a lock. */
export const LOCK_POLL_MS = 25

export interface RefreshCoordinatorOptions {
  /** Key prefix, e.g. `bff:`; the same as the `redisStore`'s when `sessions` is given. */
  prefix?: string
  /**
   * How long one instance may hold a session's refresh lock, in milliseconds; longer than an IdP
   * call with its retries may take. If the holder dies, another instance takes over once it expires.
   * @default 15000
   */
  lockMs?: number
  /** The clock, epoch milliseconds, that bounds a wait for the lock (twice `lockMs`). */
  now?: () => number
  /**
   * The `redisStore` the sessions live in (the same client and `prefix`), when they live in Redis:
   * a newer generation stored there counts as refreshed already, and the lock holder writes the
   * new tokens to it before the others are told. Without it (the `cookie` store, whose sessions
   * live in the browser), only the published refresh results count.
   */
  sessions?: SessionStore
}

/**
 * One refresh per session generation across the cluster: a lock with expiry picks the instance that
 * calls the IdP; it publishes the new tokens for 30 s under the old generation, and the others wait
 * for them instead of spending the same refresh token. A lock whose holder died expires and is
 * taken over; a request waits at most twice the lock time.
 */
export function redisRefreshCoordinator(
  redis: RedisClient,
  options: RefreshCoordinatorOptions = {}
): RefreshCoordinator {
  const prefix = options.prefix ?? 'bff:'
  const lockMs = options.lockMs ?? 15_000
  const now = options.now ?? Date.now
  const { sessions } = options
  const lockKey = (session: Session) => `${prefix}lock:${session.id}`
  const resultKey = (session: Session) => `${prefix}refreshed:${session.id}:${session.generation}`

  /** The session as Redis holds it now: read from Redis itself, never from a store's cache. */
  async function stored(id: string): Promise<Session | null> {
    const raw = await redis.get(redisSessionKey(prefix, id, redis.isCluster))
    return raw === null ? null : (JSON.parse(raw) as Session)
  }

  async function refreshedBy(session: Session): Promise<Session | null> {
    const cached = await redis.get(resultKey(session))
    if (cached) return JSON.parse(cached) as Session
    if (!sessions) return null
    const current = await stored(session.id)
    const live = current !== null && current.expiresAt * 1000 > now()
    return live && current.generation > session.generation ? current : null
  }

  return {
    async refreshOnce(session, refresh) {
      const holder = crypto.randomUUID()
      const giveUpAt = now() + 2 * lockMs
      for (;;) {
        const done = await refreshedBy(session)
        if (done) return done
        if ((await redis.set(lockKey(session), holder, 'PX', lockMs, 'NX')) === 'OK') {
          try {
            const raced = await refreshedBy(session)
            if (raced) return raced
            const refreshed = await refresh(session)
            // update() keeps it monotonic: it never writes over a newer or an ended session.
            await sessions?.update(refreshed)
            await redis.set(resultKey(session), JSON.stringify(refreshed), 'PX', REFRESH_RESULT_MS)
            return refreshed
          } finally {
            await redis.eval(RELEASE_LOCK, 1, lockKey(session), holder).catch(() => {})
          }
        }
        if (now() > giveUpAt) throw new Error('timed out waiting for the refresh lock')
        await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS))
      }
    },
  }
}
