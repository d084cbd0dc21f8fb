/**
 * The Durable Object under one key: the session ids of an IdP `sid` or a `sub` (so back-channel
 * logout and the admin API find every session without a scan) and, for the `cookie` store, its
 * revocation; or a claimed one-time key (logout token `jti`); or a token shared by every isolate
 * (a client-credentials or exchanged token), with the lock that picks the one isolate renewing
 * it; or the health check's ping.
 */
import { DurableObject } from 'cloudflare:workers'
import { ofIdp } from '../../core/session/idp-scope.ts'
import { revocationMs, revokedScopes } from '../../core/session/revocations.ts'
import type { DpopJwk, Session } from '../../core/session/types.ts'
import { sessionObject, type SessionObjectEnv } from './bindings.ts'
import { now, syncTestClock } from './test-clock.ts'
import { acceptListener, announceEnd, closeListener } from './session-ends.ts'
import type { SessionEnd } from '../../core/session/live.ts'
import type {
  Request as WorkersRequest,
  Response as WorkersResponse,
  WebSocket as WorkersWebSocket,
} from '@cloudflare/workers-types/latest'

/** Storage key prefix of index members: `m:<session id>` -> when its cookie ends (epoch seconds). */
const MEMBER = 'm:'
/**
 * A `cookie` store revocation of this sid or sub: `revoked` without idp (every session of it, the
 * key from before IdPs were told apart), `revoked@<scope>` with one (see `revokedScopes`).
 */
const REVOKED = 'revoked'
const revokedKey = (scope: string | null) => (scope === null ? REVOKED : `${REVOKED}@${scope}`)
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
  /** `DPoP` for a token bound to a key. */
  tokenType?: 'DPoP'
  /** A client-credentials token's key (a private JWK), kept with it as Redis keeps it on Node. */
  dpopKey?: DpopJwk
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

  /**
   * Ends every session listed here (with `idp`, that IdP's and those with no recorded idp: another
   * IdP's stay, and stay listed); answers how many were live.
   */
  async endAll(kind: 'sid' | 'sub', idp?: string): Promise<number> {
    const members = [...(await this.ctx.storage.list<number>({ prefix: MEMBER }))]
    // Forgotten first: the sessions' calls back to this index then find nothing to do.
    const keys = members.map(([key]) => key)
    await deleteKeys(this.ctx.storage, keys)
    const ended = await Promise.all(
      keys.map((key) => {
        const session = sessionObject(this.env, key.slice(MEMBER.length))
        return idp === undefined ? session.remove(kind) : session.removeOf(kind, idp)
      })
    )
    // Another IdP's sessions are listed again, as they were. One that ended or moved to another
    // sid or sub meanwhile may leave a stale entry, as a failed unindex does (session-object.ts):
    // at worst a later endAll here ends it too, which fails safe.
    const kept = members.filter((_, i) => ended[i] === 'other')
    for (let i = 0; i < kept.length; i += 128) {
      await this.ctx.storage.put(Object.fromEntries(kept.slice(i, i + 128)))
    }
    const lastUntil = kept.reduce((latest, [, until]) => Math.max(latest, until), 0)
    if (lastUntil > 0) await this.scheduleAlarm(lastUntil)
    return ended.filter((live) => live === true).length
  }

  /** The live sessions listed here (with `idp`, that IdP's and those with no recorded idp). */
  async sessions(idp?: string): Promise<Session[]> {
    const members = await this.ctx.storage.list<number>({ prefix: MEMBER })
    const sessions = await Promise.all(
      [...members.keys()].map(
        async (key) =>
          (await sessionObject(this.env, key.slice(MEMBER.length)).read()) as Session | null
      )
    )
    return sessions.filter((s): s is Session => s !== null && ofIdp(s, idp))
  }

  /** Revokes this sid or sub (with `idp`, for that IdP's sessions and those with no idp). */
  async revoke(until: number, idp?: string): Promise<void> {
    await syncTestClock(this.env)
    const at = now()
    let latest = until
    for (const scope of revokedScopes(idp)) {
      const key = revokedKey(scope)
      const previous = await this.ctx.storage.get<Revocation>(key)
      const revocation = { at, until: Math.max(until, previous?.until ?? 0) }
      await this.ctx.storage.put(key, revocation)
      latest = Math.max(latest, revocation.until)
    }
    await this.scheduleAlarm(latest)
  }

  /**
   * When this sid or sub was last revoked for the sessions of `scope` (see `checkedScopes`; none:
   * the revocations without idp only), in epoch milliseconds, or null.
   */
  async revokedAt(scope?: string): Promise<number | null> {
    await syncTestClock(this.env)
    const keys = [revokedKey(null), ...(scope === undefined ? [] : [revokedKey(scope)])]
    let latest: number | null = null
    for (const revocation of (await this.ctx.storage.get<Revocation>(keys)).values()) {
      if (revocation.until * 1000 <= now()) continue
      latest = Math.max(latest ?? 0, revocationMs(revocation.at))
    }
    return latest
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

  /**
   * Live connections of the sessions of this `sid` or `sub` listen here (session-ends.ts); an end
   * by `sid` or `sub` is told to them by `announce`, and each connection checks its IdP.
   */
  override async fetch(request: WorkersRequest): Promise<WorkersResponse> {
    return acceptListener(this.ctx, request) as unknown as WorkersResponse
  }

  /** Tells the live connections listening here that sessions of this sid or sub ended. */
  async announce(end: SessionEnd): Promise<void> {
    announceEnd(this.ctx, end)
  }

  override async webSocketClose(
    socket: WorkersWebSocket,
    code: number,
    reason: string
  ): Promise<void> {
    closeListener(socket, code, reason)
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
    for (const [key, revocation] of await storage.list<Revocation>({ prefix: REVOKED })) {
      if (revocation.until * 1000 <= t) await storage.delete(key)
      else latest = Math.max(latest, revocation.until)
    }
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
