/**
 * The Redis-backed lists a cluster shares besides sessions: the revocation list `cookie` mode needs
 * (no server holds those sessions) and the replay guard for logout tokens. Every key expires.
 */
import type { Redis } from 'ioredis'
import type { ReplayGuard } from '../../replay.ts'
import type { RevocationList } from '../revocations.ts'

export interface RedisListOptions {
  /** Key prefix, e.g. `bff:`. */
  prefix?: string
  /** Epoch milliseconds. */
  now?: () => number
}

export function redisRevocationList(redis: Redis, options: RedisListOptions = {}): RevocationList {
  const prefix = `${options.prefix ?? 'bff:'}revoked:`
  const now = options.now ?? Date.now
  const ttlMs = (until: number) => Math.max(1000, until * 1000 - now())

  return {
    async revokeSession(id, until) {
      await redis.set(`${prefix}id:${id}`, '1', 'PX', ttlMs(until))
    },
    // The value is the time of the revocation: sessions created later are new logins and stay valid.
    async revokeSid(sid, until) {
      await redis.set(`${prefix}sid:${sid}`, String(Math.floor(now() / 1000)), 'PX', ttlMs(until))
    },
    async revokeSub(sub, until) {
      await redis.set(`${prefix}sub:${sub}`, String(Math.floor(now() / 1000)), 'PX', ttlMs(until))
    },
    async isRevoked(session) {
      const [id, sid, sub] = await redis.mget(
        `${prefix}id:${session.id}`,
        `${prefix}sid:${session.sid}`,
        `${prefix}sub:${session.sub}`
      )
      return (
        id !== null ||
        (sid !== null && session.createdAt <= Number(sid)) ||
        (sub !== null && session.createdAt <= Number(sub))
      )
    },
  }
}

export function redisReplayGuard(redis: Redis, options: RedisListOptions = {}): ReplayGuard {
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
