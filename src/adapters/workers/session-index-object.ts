/**
 * The Durable Object under one key: the session ids of an IdP `sid` or a `sub` (so back-channel
 * logout and the admin API find every session without a scan) and, for the `cookie` store, its
 * revocation; or a claimed one-time key (logout token `jti`); or a token shared by every isolate
 * (a client-credentials or exchanged token), with the lock that picks the one isolate renewing
 * it; or the health check's ping.
 */
import { DurableObject } from 'cloudflare:workers'
import type { Session } from '../../core/session/types.ts'
import { sessionObject, type SessionObjectEnv } from './bindings.ts'
import { now, syncTestClock } from './test-clock.ts'

/** Storage key prefix of index members: `m:<session id>` -> when its cookie ends (epoch seconds). */
const MEMBER = 'm:'
/** A `cookie` store revocation of this sid or sub. */
const REVOKED = 'revoked'
/** Epoch seconds until which this one-time key is taken. */
const CLAIMED = 'claimed'
/** A shared token, and who renews it until when. */
const TOKEN = 'token'
const TOKEN_LOCK = 'token-lock'

/**
 * A shared token as kept here: the core's `SharedToken`, written out since storage code imports
 * nothing of token management. Times in epoch seconds.
 */
export interface KeptToken {
  accessToken: string
  expiresAt: number
  renewAt: number
}

/** What `sharedToken` answers: the token, or whether the caller now holds the renewal lock. */
export type TokenTurn = { token: KeptToken } | { locked: boolean }

interface Revocation {
  /**
   * When it was revoked: sessions created later are new logins (epoch milliseconds; epoch seconds
   * in objects written before, which `revokedBy` tells apart).
   */
  at: number
  /** How long to remember it (epoch seconds). */
  until: number
}

/**
 * A small record under one key: the session ids of a `sid` or `sub` (and, for the `cookie` store,
 * its revocation), or a claimed one-time key.
 */
export class SessionIndexObject extends DurableObject<SessionObjectEnv> {
  async add(id: string, until: number): Promise<void> {
    await this.ctx.storage.put(MEMBER + id, until)
    await this.scheduleAlarm(until)
  }

  async remove(id: string): Promise<void> {
    await this.ctx.storage.delete(MEMBER + id)
  }

  /** Ends every session listed here; answers how many were live. */
  async endAll(kind: 'sid' | 'sub'): Promise<number> {
    const members = await this.ctx.storage.list<number>({ prefix: MEMBER })
    // Forgotten first: the sessions' calls back to this index then find nothing to do.
    await deleteKeys(this.ctx.storage, [...members.keys()])
    const ended = await Promise.all(
      [...members.keys()].map((key) =>
        sessionObject(this.env, key.slice(MEMBER.length)).remove(kind)
      )
    )
    return ended.filter(Boolean).length
  }

  /** The live sessions listed here. */
  async sessions(): Promise<Session[]> {
    const members = await this.ctx.storage.list<number>({ prefix: MEMBER })
    const sessions = await Promise.all(
      [...members.keys()].map(
        async (key) =>
          (await sessionObject(this.env, key.slice(MEMBER.length)).read()) as Session | null
      )
    )
    return sessions.filter((session) => session !== null)
  }

  async revoke(until: number): Promise<void> {
    await syncTestClock(this.env)
    const previous = await this.ctx.storage.get<Revocation>(REVOKED)
    const revocation = {
      at: now(),
      until: Math.max(until, previous?.until ?? 0),
    }
    await this.ctx.storage.put(REVOKED, revocation)
    await this.scheduleAlarm(revocation.until)
  }

  /** When this sid or sub was last revoked (see `Revocation.at`), or null. */
  async revokedAt(): Promise<number | null> {
    await syncTestClock(this.env)
    const revocation = await this.ctx.storage.get<Revocation>(REVOKED)
    return revocation && revocation.until * 1000 > now() ? revocation.at : null
  }

  /** True the first time within `ttlSeconds`; the object is the single place that decides. */
  async claim(ttlSeconds: number): Promise<boolean> {
    await syncTestClock(this.env)
    const claimed = await this.ctx.storage.get<number>(CLAIMED)
    if (claimed !== undefined && claimed * 1000 > now()) return false
    const until = Math.ceil(now() / 1000 + ttlSeconds)
    await this.ctx.storage.put(CLAIMED, until)
    await this.scheduleAlarm(until)
    return true
  }

  async release(): Promise<void> {
    await this.ctx.storage.delete(CLAIMED)
  }

  /**
   * The token kept here while it is not due for renewal; else the renewal lock for `holder`
   * (epoch ms until `lockMs` from now) when nobody holds it, or word that someone does.
   */
  async sharedToken(holder: string, lockMs: number): Promise<TokenTurn> {
    await syncTestClock(this.env)
    const storage = this.ctx.storage
    const token = await storage.get<KeptToken>(TOKEN)
    if (token && token.renewAt * 1000 > now()) return { token }
    const lock = await storage.get<{ holder: string; until: number }>(TOKEN_LOCK)
    if (lock && lock.holder !== holder && lock.until > now()) return { locked: false }
    const until = now() + lockMs
    await storage.put(TOKEN_LOCK, { holder, until })
    // A holder that dies leaves the lock to expire; the alarm clears it if nothing follows.
    await this.scheduleAlarm(until / 1000)
    return { locked: true }
  }

  /** Keeps `token` for every isolate (until it expires) and releases `holder`'s lock. */
  async publishToken(holder: string, token: KeptToken): Promise<void> {
    await this.ctx.storage.put(TOKEN, token)
    await this.scheduleAlarm(token.expiresAt)
    await this.releaseTokenLock(holder)
  }

  async releaseTokenLock(holder: string): Promise<void> {
    const lock = await this.ctx.storage.get<{ holder: string }>(TOKEN_LOCK)
    if (lock?.holder === holder) await this.ctx.storage.delete(TOKEN_LOCK)
  }

  /** Health check: answers once this object's storage does. */
  async ping(): Promise<true> {
    await this.ctx.storage.get(CLAIMED)
    return true
  }

  override async alarm(): Promise<void> {
    // Alarms fire on real time; what they keep or drop is judged by the clock requests see.
    await syncTestClock(this.env)
    const storage = this.ctx.storage
    const t = now()
    let latest = 0
    const expired: string[] = []
    for (const [key, until] of await storage.list<number>({ prefix: MEMBER })) {
      if (until * 1000 <= t) expired.push(key)
      else latest = Math.max(latest, until)
    }
    await deleteKeys(storage, expired)
    const revocation = await storage.get<Revocation>(REVOKED)
    if (revocation && revocation.until * 1000 <= t) await storage.delete(REVOKED)
    else if (revocation) latest = Math.max(latest, revocation.until)
    const claimed = await storage.get<number>(CLAIMED)
    if (claimed !== undefined && claimed * 1000 <= t) await storage.delete(CLAIMED)
    else if (claimed !== undefined) latest = Math.max(latest, claimed)
    const token = await storage.get<KeptToken>(TOKEN)
    if (token && token.expiresAt * 1000 <= t) await storage.delete(TOKEN)
    else if (token) latest = Math.max(latest, token.expiresAt)
    const lock = await storage.get<{ until: number }>(TOKEN_LOCK)
    if (lock && lock.until <= t) await storage.delete(TOKEN_LOCK)
    else if (lock) latest = Math.max(latest, lock.until / 1000)
    if (latest > 0) await storage.setAlarm(latest * 1000)
    else await storage.deleteAll()
  }

  private async scheduleAlarm(until: number) {
    const current = await this.ctx.storage.getAlarm()
    if (current === null || current < until * 1000) await this.ctx.storage.setAlarm(until * 1000)
  }
}

/** Durable Object storage deletes at most 128 keys per call. */
async function deleteKeys(storage: { delete(keys: string[]): Promise<number> }, keys: string[]) {
  for (let i = 0; i < keys.length; i += 128) await storage.delete(keys.slice(i, i + 128))
}
