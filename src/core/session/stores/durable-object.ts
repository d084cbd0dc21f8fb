/**
 * The `durable-object` store (Cloudflare Workers only) and the Durable Objects behind it.
 *
 * Sharding: one `SessionObject` per session id holds that session, so sessions never contend with
 * each other and each one is strongly consistent (a Durable Object is a single instance worldwide).
 * One `SessionIndexObject` per IdP `sid` and per `sub` lists the session ids that carry it, so
 * back-channel logout finds every session without a scan. Expiry is by alarm: each object wipes
 * itself once its session (or tombstone) has expired, and reads check the time as well.
 *
 * Ended sessions leave a tombstone until they would have expired, so a request that read the
 * session before a logout cannot write it back afterwards (e.g. after a token refresh).
 *
 * Token refresh runs inside the session's object (`refreshOnce`): the object is the one place every
 * isolate's requests for a session meet, so it alone spends a refresh token, once. That needs its
 * own OIDC client, built from the same settings, since a closure cannot cross into the object.
 *
 * On Workers the `cookie` store keeps its revocations (logout, back-channel logout) in the same
 * objects (`durableObjectRevocations`): an isolate's memory would forget them in every other isolate.
 */
import { DurableObject } from 'cloudflare:workers'
import type { DurableObjectNamespace, Fetcher } from '@cloudflare/workers-types/latest'
import { parseConfig, type Env } from '../../config.ts'
import { BffError, type BffErrorCode } from '../../errors.ts'
import { createOidcClient } from '../../oidc.ts'
import { createTokenManager, type TokenManager } from '../../tokens.ts'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { RevocationList } from '../revocations.ts'
import type { Session, SessionRef, SessionStore } from '../types.ts'

/** The bindings the store and its objects use (names as in wrangler.toml), next to `BFF_*` vars. */
export interface SessionObjectEnv {
  /** One object per session id. */
  BFF_SESSIONS: DurableObjectNamespace<SessionObject>
  /** One object per `sid:<sid>` and `sub:<sub>`. */
  BFF_SESSION_INDEX: DurableObjectNamespace<SessionIndexObject>
  /** Test-only, see `syncTestClock`. */
  BFF_TEST_CLOCK?: Fetcher | string
  [setting: string]: unknown
}

/** What a refresh inside the object answers: errors cross the RPC boundary as plain data. */
export type RefreshOutcome =
  | { ok: true; session: Session }
  | { ok: false; status: ContentfulStatusCode; code: BffErrorCode; message: string }

export function durableObjectStore(env: SessionObjectEnv): SessionStore {
  const object = (id: string) => env.BFF_SESSIONS.get(env.BFF_SESSIONS.idFromName(id))

  return {
    kind: 'durable-object',

    async set(session) {
      await object(session.id).put(session)
      return { id: session.id }
    },

    async get(ref: SessionRef) {
      if (!('id' in ref) || typeof ref.id !== 'string') return null
      return (await object(ref.id).read()) as Session | null
    },

    async delete(session) {
      await object(session.id).end(session.expiresAt)
    },

    deleteBySid: (sid) => indexObject(env, 'sid', sid).endAll('sid'),

    deleteBySub: (sub) => indexObject(env, 'sub', sub).endAll('sub'),

    async ping() {
      await indexObject(env, 'health', 'ping').ping()
    },

    async refreshOnce(session) {
      const outcome = (await object(session.id).refresh(session.generation)) as RefreshOutcome
      if (!outcome.ok) throw new BffError(outcome.status, outcome.code, outcome.message)
      return outcome.session
    },
  }
}

/**
 * Revocations for the `cookie` store on Workers: a logged-out session id leaves a tombstone in its
 * session object, a revoked `sid` or `sub` is remembered by its index object. Checking a request
 * reads the three objects in parallel.
 */
export function durableObjectRevocations(env: SessionObjectEnv): RevocationList {
  const object = (id: string) => env.BFF_SESSIONS.get(env.BFF_SESSIONS.idFromName(id))
  return {
    async revokeSession(id, until) {
      await object(id).end(until)
    },
    async revokeSid(sid, until) {
      await indexObject(env, 'sid', sid).revoke(until)
    },
    async revokeSub(sub, until) {
      await indexObject(env, 'sub', sub).revoke(until)
    },
    async isRevoked(session) {
      const [ended, sidRevoked, subRevoked] = await Promise.all([
        object(session.id).isEnded(),
        indexObject(env, 'sid', session.sid).revokedAt(),
        indexObject(env, 'sub', session.sub).revokedAt(),
      ])
      // As in memory: a sid revocation ends every session with it, a sub revocation only the
      // sessions created up to it ("<=": the same second counts as before).
      return (
        ended || sidRevoked !== null || (subRevoked !== null && session.createdAt <= subRevoked)
      )
    },
  }
}

type IndexKind = 'sid' | 'sub' | 'health'

function indexObject(env: SessionObjectEnv, kind: IndexKind, key: string) {
  return env.BFF_SESSION_INDEX.get(env.BFF_SESSION_INDEX.idFromName(`${kind}:${key}`))
}

/** Storage keys of a session object. */
const SESSION = 'session'
/** Epoch seconds until which the id stays dead: a tombstone. */
const ENDED = 'ended'

/** Holds one session: reads, writes, the end of it, and its token refresh. */
export class SessionObject extends DurableObject<SessionObjectEnv> {
  /** Writes the session unless it has ended or a newer generation is stored; indexes it once. */
  async put(session: Session): Promise<boolean> {
    await syncTestClock(this.env)
    const storage = this.ctx.storage
    if (await this.endedUntil()) return false
    if (session.expiresAt * 1000 <= now()) {
      await this.end(session.expiresAt)
      return false
    }
    const stored = await storage.get<Session>(SESSION)
    if (stored && stored.generation > session.generation) return false // a stale write
    if (!stored || stored.sid !== session.sid || stored.sub !== session.sub) {
      // Index first: a back-channel logout can then always find a session that exists.
      await Promise.all([
        indexObject(this.env, 'sid', session.sid).add(session.id, session.expiresAt),
        indexObject(this.env, 'sub', session.sub).add(session.id, session.expiresAt),
      ])
      if (stored) await this.unindex(stored, session)
      // The calls above let other requests in: a logout may have ended the session meanwhile.
      if (await this.endedUntil()) return false
    }
    await storage.put(SESSION, session)
    await this.scheduleWipe(session.expiresAt)
    return true
  }

  /** The live session, or null when unknown, ended or expired. */
  async read(): Promise<Session | null> {
    await syncTestClock(this.env)
    if (await this.endedUntil()) return null
    const session = await this.ctx.storage.get<Session>(SESSION)
    if (!session || session.expiresAt * 1000 <= now()) return null
    return session
  }

  /**
   * Ends the session and keeps its id dead until `until` (epoch seconds) or its expiry, whichever
   * is later. `from` names an index that is already forgetting it. Answers whether it was live.
   */
  async end(until: number, from?: 'sid' | 'sub'): Promise<boolean> {
    await syncTestClock(this.env)
    const storage = this.ctx.storage
    const session = await storage.get<Session>(SESSION)
    const previous = await this.endedUntil()
    const live = !!session && !previous && session.expiresAt * 1000 > now()
    const deadUntil = Math.max(until, session?.expiresAt ?? 0, previous ?? 0)
    await storage.delete(SESSION)
    await storage.put(ENDED, deadUntil)
    await this.scheduleWipe(deadUntil)
    if (session) await this.unindex(session, undefined, from)
    return live
  }

  async isEnded(): Promise<boolean> {
    await syncTestClock(this.env)
    return (await this.endedUntil()) !== null
  }

  /**
   * The session with fresh tokens, refreshing them here at most once per generation: a caller
   * holding an older generation than the stored one gets the stored session and no grant.
   */
  async refresh(generation: number): Promise<RefreshOutcome> {
    await syncTestClock(this.env)
    const stored = await this.read()
    if (!stored) return failure(new BffError(401, 'session_expired', 'The session has ended.'))
    if (stored.generation > generation) return { ok: true, session: stored }
    // The token manager joins concurrent calls for one refresh token into one grant.
    const result = await tokenManager(this.env).freshSession(stored)
    if (result.kind === 'error') return failure(result.error)
    if (result.kind === 'refreshed' && !(await this.put(result.session))) {
      // Ended (logged out) while the grant ran: the new tokens must not revive it.
      return failure(new BffError(401, 'session_expired', 'The session has ended.'))
    }
    return { ok: true, session: result.session }
  }

  override async alarm(): Promise<void> {
    // Alarms run on real time; the test clock only moves what requests see.
    const storage = this.ctx.storage
    const session = await storage.get<Session>(SESSION)
    const until = Math.max(session?.expiresAt ?? 0, (await storage.get<number>(ENDED)) ?? 0)
    if (until * 1000 > Date.now()) {
      await storage.setAlarm(until * 1000)
      return
    }
    if (session) await this.unindex(session)
    await storage.deleteAll()
  }

  private async endedUntil(): Promise<number | null> {
    const until = await this.ctx.storage.get<number>(ENDED)
    return until !== undefined && until * 1000 > now() ? until : null
  }

  private async scheduleWipe(until: number) {
    const current = await this.ctx.storage.getAlarm()
    if (current === null || current < until * 1000) await this.ctx.storage.setAlarm(until * 1000)
  }

  /** Removes `old` from its indexes, keeping those `next` still uses and skipping `from`. */
  private async unindex(old: Session, next?: Session, from?: 'sid' | 'sub') {
    const calls: Promise<unknown>[] = []
    if (from !== 'sid' && old.sid !== next?.sid) {
      calls.push(indexObject(this.env, 'sid', old.sid).remove(old.id))
    }
    if (from !== 'sub' && old.sub !== next?.sub) {
      calls.push(indexObject(this.env, 'sub', old.sub).remove(old.id))
    }
    // A stale index entry is harmless (its session is gone or tombstoned); a failed call must not
    // undo the logout that caused it.
    await Promise.allSettled(calls)
  }
}

/** Storage key prefix of index members: `m:<session id>` -> the session's expiry (epoch seconds). */
const MEMBER = 'm:'
/** Cookie store revocation of this sid or sub: `{ at, until }` in epoch seconds. */
const REVOKED = 'revoked'

interface Revocation {
  at: number
  until: number
}

/** The session ids of one `sid` or `sub`, and (cookie store) its revocation. */
export class SessionIndexObject extends DurableObject<SessionObjectEnv> {
  async add(id: string, expiresAt: number): Promise<void> {
    await this.ctx.storage.put(MEMBER + id, expiresAt)
    await this.scheduleSweep(expiresAt)
  }

  async remove(id: string): Promise<void> {
    await this.ctx.storage.delete(MEMBER + id)
  }

  /** Ends every session listed here; answers how many were live. */
  async endAll(kind: 'sid' | 'sub'): Promise<number> {
    await syncTestClock(this.env)
    const members = await this.ctx.storage.list<number>({ prefix: MEMBER })
    // Forget them first: their objects' calls back to this index then find nothing to do.
    await this.ctx.storage.delete([...members.keys()])
    const ended = await Promise.all(
      [...members].map(([key, expiresAt]) => {
        const id = key.slice(MEMBER.length)
        return this.env.BFF_SESSIONS.get(this.env.BFF_SESSIONS.idFromName(id)).end(expiresAt, kind)
      })
    )
    return ended.filter(Boolean).length
  }

  async revoke(until: number): Promise<void> {
    await syncTestClock(this.env)
    const previous = await this.ctx.storage.get<Revocation>(REVOKED)
    const revocation = {
      at: Math.floor(now() / 1000),
      until: Math.max(until, previous?.until ?? 0),
    }
    await this.ctx.storage.put(REVOKED, revocation)
    await this.scheduleSweep(revocation.until)
  }

  /** When this sid or sub was last revoked (epoch seconds), or null. */
  async revokedAt(): Promise<number | null> {
    await syncTestClock(this.env)
    const revocation = await this.ctx.storage.get<Revocation>(REVOKED)
    return revocation && revocation.until * 1000 > now() ? revocation.at : null
  }

  /** Health check: answers once this object's storage does. */
  async ping(): Promise<true> {
    await this.ctx.storage.get(REVOKED)
    return true
  }

  override async alarm(): Promise<void> {
    const storage = this.ctx.storage
    const t = Date.now()
    let latest = 0
    const expired: string[] = []
    for (const [key, expiresAt] of await storage.list<number>({ prefix: MEMBER })) {
      if (expiresAt * 1000 <= t) expired.push(key)
      else latest = Math.max(latest, expiresAt)
    }
    if (expired.length) await storage.delete(expired)
    const revocation = await storage.get<Revocation>(REVOKED)
    if (revocation && revocation.until * 1000 <= t) await storage.delete(REVOKED)
    else if (revocation) latest = Math.max(latest, revocation.until)
    if (latest > 0) await storage.setAlarm(latest * 1000)
    else await storage.deleteAll()
  }

  private async scheduleSweep(until: number) {
    const current = await this.ctx.storage.getAlarm()
    if (current === null || current < until * 1000) await this.ctx.storage.setAlarm(until * 1000)
  }
}

function failure(error: BffError): RefreshOutcome {
  return {
    ok: false,
    status: error.status as ContentfulStatusCode,
    code: error.code,
    message: error.message,
  }
}

// One token manager per isolate, shared by the session objects it hosts: its OIDC client caches the
// discovery document, and its single-flight map is keyed by refresh token, unique per session.
let tokens: TokenManager | undefined

function tokenManager(env: SessionObjectEnv): TokenManager {
  if (!tokens) {
    const config = parseConfig(settingsOf(env), { sessionStore: 'durable-object' })
    tokens = createTokenManager({
      oidc: createOidcClient(config, { now }),
      skewSeconds: config.refreshSkewSeconds,
      now,
    })
  }
  return tokens
}

/** The string settings among a Worker's bindings: what `parseConfig` reads. */
export function settingsOf(env: Record<string, unknown>): Env {
  const settings: Record<string, string> = {}
  for (const [name, value] of Object.entries(env))
    if (typeof value === 'string') settings[name] = value
  return settings
}

/*
 * Test clock. Integration tests move the BFF's clock forward to expire access tokens without
 * waiting; on Node they inject `deps.now`, but a Worker's code cannot be reached from the test
 * process. So when the Worker has a *service binding* named `BFF_TEST_CLOCK`, every request and
 * every object call first asks it for an offset in milliseconds and adds that to `Date.now()`.
 *
 * It cannot be switched on by accident: `[vars]` and secrets are strings and a service binding is
 * not; a string `BFF_TEST_CLOCK` is refused as a configuration error; wrangler.toml binds no such
 * service, and only the test harness (Miniflare) provides one. While it is on, each isolate logs a
 * warning once.
 */
let clockOffsetMs = 0
let clockWarned = false

/** Epoch milliseconds: `Date.now()` plus the test clock's offset (always 0 in production). */
export function now(): number {
  return Date.now() + clockOffsetMs
}

/** Reads the test clock's offset when the test-only binding exists; does nothing otherwise. */
export async function syncTestClock(env: { BFF_TEST_CLOCK?: Fetcher | string }): Promise<void> {
  const clock = env.BFF_TEST_CLOCK
  if (clock === undefined || typeof clock === 'string') return
  if (!clockWarned) {
    clockWarned = true
    console.warn(JSON.stringify({ level: 'warn', event: 'test_clock.enabled' }))
  }
  const offset = Number(await (await clock.fetch('http://test-clock/')).text())
  if (!Number.isFinite(offset)) throw new Error('BFF_TEST_CLOCK answered no number')
  clockOffsetMs = offset
}
