/**
 * The `durable-object` store (Cloudflare Workers only) and the Durable Objects behind it.
 *
 * Sharding: one `SessionObject` per session id holds that session, so sessions never contend with
 * each other and each one is strongly consistent (a Durable Object is a single instance worldwide).
 * One `SessionIndexObject` per IdP `sid` and per `sub` lists the session ids that carry it, so
 * back-channel logout finds every session without a scan. Expiry is by alarm: each object wipes
 * itself once what it holds has expired, and reads check the time as well.
 *
 * Writes never go backwards: `update` needs a live session of the same or an older generation, so
 * a request that read the session before a logout or a refresh cannot write it back afterwards.
 *
 * Token refresh runs inside the session's object (`refreshOnce`): the object is the one place every
 * isolate's requests for a session meet, so it alone spends a refresh token, once. That needs its
 * own OIDC client, built from the same settings, since a closure cannot cross into the object.
 *
 * What Node keeps in Redis for the `cookie` store lives in these objects too, since it must hold in
 * every isolate: revocations (a tombstone per session id, a revocation time per sid and sub), the
 * newest generation of each session, refresh coordination (`durableObjectRefreshCoordinator`),
 * and the one-time logout token ids (`durableObjectReplayGuard`, one object per key).
 */
import { DurableObject } from 'cloudflare:workers'
import type { DurableObjectNamespace, Fetcher } from '@cloudflare/workers-types/latest'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { parseConfig, type Env } from '../../config.ts'
import { BffError, type BffErrorCode } from '../../errors.ts'
import { errorReason } from '../../log.ts'
import { createOidcClient } from '../../oidc.ts'
import type { ReplayGuard } from '../../replay.ts'
import { createTokenManager, type TokenManager } from '../../tokens.ts'
import { revokedBy, type RevocationList } from '../revocations.ts'
import type { Session, SessionRef, SessionStore } from '../types.ts'

/** The bindings the store and its objects use (names as in wrangler.toml), next to `BFF_*` vars. */
export interface SessionObjectEnv {
  /** One object per session id. */
  BFF_SESSIONS: DurableObjectNamespace<SessionObject>
  /** One object per `sid:<sid>`, `sub:<sub>` and `once:<key>`. */
  BFF_SESSION_INDEX: DurableObjectNamespace<SessionIndexObject>
  /** Test-only, see `syncTestClock`: a service binding; anything else is refused. */
  BFF_TEST_CLOCK?: unknown
  [setting: string]: unknown
}

/** What a refresh inside the object answers: errors cross the RPC boundary as plain data. */
export type RefreshOutcome =
  | { ok: true; session: Session }
  | {
      ok: false
      status: ContentfulStatusCode
      code: BffErrorCode
      message: string
      /** The cause's class and code, for the caller's log (`errorReason`); none without a cause. */
      reason?: string
    }

export function durableObjectStore(env: SessionObjectEnv): SessionStore {
  return {
    kind: 'durable-object',

    async set(session) {
      await sessionObject(env, session.id).write(session, 'create')
      return { id: session.id }
    },

    async update(session) {
      const written = await sessionObject(env, session.id).write(session, 'update')
      return written ? { id: session.id } : null
    },

    async get(ref: SessionRef) {
      if (!('id' in ref) || typeof ref.id !== 'string') return null
      return (await sessionObject(env, ref.id).read()) as Session | null
    },

    async delete(session) {
      await sessionObject(env, session.id).remove()
    },

    deleteBySid: (sid) => indexObject(env, 'sid', sid).endAll('sid'),

    deleteBySub: (sub) => indexObject(env, 'sub', sub).endAll('sub'),

    async listBySub(sub) {
      return (await indexObject(env, 'sub', sub).sessions()) as Session[]
    },

    async ping() {
      await indexObject(env, 'health', 'ping').ping()
    },

    async refreshOnce(session) {
      return unwrap(
        (await sessionObject(env, session.id).refresh(session.generation)) as RefreshOutcome
      )
    },
  }
}

/**
 * Revocations for the `cookie` store on Workers: a logged-out session id leaves a tombstone in its
 * session object, a revoked `sid` or `sub` is remembered by its index object. Checking a request
 * reads the three objects in parallel.
 */
export function durableObjectRevocations(env: SessionObjectEnv): RevocationList {
  return {
    async revokeSession(id, until) {
      await sessionObject(env, id).end(until)
    },
    async revokeSid(sid, until) {
      await indexObject(env, 'sid', sid).revoke(until)
    },
    async revokeSub(sub, until) {
      await indexObject(env, 'sub', sub).revoke(until)
    },
    async recordGeneration(id, generation, until) {
      await sessionObject(env, id).recordGeneration(generation, until)
    },
    latestGeneration: (id) => sessionObject(env, id).latestGeneration(),
    async isRevoked(session) {
      const [ended, sidRevokedAt, subRevokedAt] = await Promise.all([
        sessionObject(env, session.id).isEnded(),
        indexObject(env, 'sid', session.sid).revokedAt(),
        indexObject(env, 'sub', session.sub).revokedAt(),
      ])
      // A sid or sub revocation ends the sessions created up to it; later ones are new logins.
      return ended || revokedBy(sidRevokedAt, session) || revokedBy(subRevokedAt, session)
    },
  }
}

/**
 * `refreshOnce` for the `cookie` store on Workers: the session's object refreshes the tokens the
 * cookie carries, once per generation, and hands the result to late callers still holding the
 * older cookie (for the token manager's grace window) instead of spending the refresh token again.
 */
export function durableObjectRefreshCoordinator(
  env: SessionObjectEnv
): NonNullable<SessionStore['refreshOnce']> {
  return async (session) =>
    unwrap((await sessionObject(env, session.id).refreshCarried(session)) as RefreshOutcome)
}

/** One-time keys (logout token `jti`s) shared by every isolate: one object per key. */
export function durableObjectReplayGuard(env: SessionObjectEnv): ReplayGuard {
  return {
    claim: (key, ttlSeconds) => indexObject(env, 'once', key).claim(ttlSeconds),
    async release(key) {
      await indexObject(env, 'once', key).release()
    },
  }
}

function unwrap(outcome: RefreshOutcome): Session {
  if (outcome.ok) return outcome.session
  // The cause stayed in the object; its name carries the reason into the caller's log.
  const cause = outcome.reason && Object.assign(new Error(outcome.reason), { name: outcome.reason })
  throw new BffError(outcome.status, outcome.code, outcome.message, { cause })
}

function sessionObject(env: SessionObjectEnv, id: string) {
  return env.BFF_SESSIONS.get(env.BFF_SESSIONS.idFromName(id))
}

type IndexKind = 'sid' | 'sub' | 'once' | 'health'

function indexObject(env: SessionObjectEnv, kind: IndexKind, key: string) {
  return env.BFF_SESSION_INDEX.get(env.BFF_SESSION_INDEX.idFromName(`${kind}:${key}`))
}

/** The last moment a cookie for this session can be valid: its expiry slides up to the absolute. */
function lastValidAt(session: Session): number {
  return Math.max(session.expiresAt, session.absoluteExpiresAt ?? 0)
}

/** Storage keys of a session object: the session, and the tombstone (epoch seconds it lasts). */
const SESSION = 'session'
const ENDED = 'ended'
/** `cookie` store: the newest generation handed out, and the last refresh result. */
const GENERATION = 'generation'
const REFRESHED = 'refreshed'
/** How long a `cookie` store refresh result is handed to callers with the older cookie. */
const REFRESHED_MS = 30_000

/** A value kept until `until` (epoch seconds). */
interface Kept<T> {
  value: T
  until: number
}

/** Holds one session: reads, writes, the end of it, and its token refresh. */
export class SessionObject extends DurableObject<SessionObjectEnv> {
  /**
   * Writes the session; answers false when the write was dropped. Never after the session ended,
   * never over a newer generation; `update` writes only over a live session.
   */
  async write(session: Session, mode: 'create' | 'update'): Promise<boolean> {
    await syncTestClock(this.env)
    if (await this.endedUntil()) return false
    const stored = await this.live()
    if (mode === 'update' && !stored) return false
    if (stored && stored.generation > session.generation) return false
    if (session.expiresAt * 1000 <= now()) {
      await this.remove()
      return false
    }
    if (!stored || stored.sid !== session.sid || stored.sub !== session.sub) {
      // Index first: back-channel logout can then find every session that exists.
      await Promise.all([
        indexObject(this.env, 'sid', session.sid).add(session.id, lastValidAt(session)),
        indexObject(this.env, 'sub', session.sub).add(session.id, lastValidAt(session)),
      ])
      if (stored) await this.unindex(stored, session)
      // Awaiting other objects lets requests in: a logout may have ended the session meanwhile,
      // or a refresh written a newer generation.
      if (await this.endedUntil()) return false
      const current = await this.live()
      if (current && current.generation > session.generation) return false
    }
    await this.ctx.storage.put(SESSION, session)
    await this.scheduleAlarm(session.expiresAt)
    return true
  }

  /** The live session, or null when unknown, ended or expired. */
  async read(): Promise<Session | null> {
    await syncTestClock(this.env)
    if (await this.endedUntil()) return null
    return this.live()
  }

  /**
   * Deletes the stored session (`durable-object` store). No tombstone: rewrites go through
   * `update`, which needs a live session, and `hybridStore` moves a session that shrank into its
   * cookie by deleting the copy here, which must not end it. `from` names an index that is already
   * forgetting it. Answers whether it was live.
   */
  async remove(from?: 'sid' | 'sub'): Promise<boolean> {
    await syncTestClock(this.env)
    const storage = this.ctx.storage
    const session = await storage.get<Session>(SESSION)
    if (!session) return false
    const live = (await this.endedUntil()) === null && session.expiresAt * 1000 > now()
    await storage.delete(SESSION)
    await this.unindex(session, undefined, from)
    return live
  }

  /**
   * Revokes the session id (`cookie` store logout): a tombstone keeps it dead until `until` (epoch
   * seconds), however many copies of its cookie exist, and removes any copy stored here.
   */
  async end(until: number): Promise<void> {
    await syncTestClock(this.env)
    const endedUntil = (await this.endedUntil()) ?? 0
    if (until > endedUntil) {
      await this.ctx.storage.put(ENDED, until)
      await this.scheduleAlarm(until)
    }
    await this.remove()
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
    const stored = await this.read()
    if (!stored) return failure(new BffError(401, 'session_expired', 'The session has ended.'))
    if (stored.generation > generation) return { ok: true, session: stored }
    // The token manager joins concurrent calls for one refresh token into one grant.
    const result = await tokenManager(this.env).freshSession(stored)
    if (result.kind === 'error') return failure(result.error)
    if (result.kind === 'refreshed' && !(await this.write(result.session, 'update'))) {
      // Ended (logged out) while the grant ran: the new tokens must not revive it.
      return failure(new BffError(401, 'session_expired', 'The session has ended.'))
    }
    return { ok: true, session: result.session }
  }

  /**
   * `cookie` store: refreshes the tokens of the session the caller's cookie carries, once per
   * generation; a caller with an older generation than the last refresh gets that refresh's result.
   */
  async refreshCarried(session: Session): Promise<RefreshOutcome> {
    await syncTestClock(this.env)
    if (await this.endedUntil()) {
      return failure(new BffError(401, 'session_expired', 'The session has ended.'))
    }
    const storage = this.ctx.storage
    const last = await storage.get<Kept<Session>>(REFRESHED)
    if (last && last.until * 1000 > now() && last.value.generation > session.generation) {
      return { ok: true, session: last.value }
    }
    // The token manager joins concurrent calls for one generation into one grant.
    const result = await tokenManager(this.env).freshSession(session)
    if (result.kind === 'error') return failure(result.error)
    if (result.kind === 'refreshed') {
      const until = (now() + REFRESHED_MS) / 1000
      await storage.put(REFRESHED, { value: result.session, until })
      await this.scheduleAlarm(until)
    }
    return { ok: true, session: result.session }
  }

  /** `cookie` store: remembers that this generation was handed out, until `until`. */
  async recordGeneration(generation: number, until: number): Promise<void> {
    const kept = await this.ctx.storage.get<Kept<number>>(GENERATION)
    if (kept && kept.value >= generation) return
    await this.ctx.storage.put(GENERATION, { value: generation, until })
    await this.scheduleAlarm(until)
  }

  async latestGeneration(): Promise<number> {
    await syncTestClock(this.env)
    const kept = await this.ctx.storage.get<Kept<number>>(GENERATION)
    return kept && kept.until * 1000 > now() ? kept.value : 0
  }

  override async alarm(): Promise<void> {
    // Alarms run on real time; the test clock only moves what requests see.
    const storage = this.ctx.storage
    const session = await storage.get<Session>(SESSION)
    const until = Math.max(
      session?.expiresAt ?? 0,
      (await storage.get<number>(ENDED)) ?? 0,
      (await storage.get<Kept<number>>(GENERATION))?.until ?? 0,
      (await storage.get<Kept<Session>>(REFRESHED))?.until ?? 0
    )
    if (until * 1000 > Date.now()) return storage.setAlarm(until * 1000)
    if (session) await this.unindex(session)
    await storage.deleteAll()
  }

  private async live(): Promise<Session | null> {
    const session = await this.ctx.storage.get<Session>(SESSION)
    return session && session.expiresAt * 1000 > now() ? session : null
  }

  private async endedUntil(): Promise<number | null> {
    const until = await this.ctx.storage.get<number>(ENDED)
    return until !== undefined && until * 1000 > now() ? until : null
  }

  private async scheduleAlarm(until: number) {
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

/** Storage key prefix of index members: `m:<session id>` -> when its cookie ends (epoch seconds). */
const MEMBER = 'm:'
/** A `cookie` store revocation of this sid or sub. */
const REVOKED = 'revoked'
/** Epoch seconds until which this one-time key is taken. */
const CLAIMED = 'claimed'

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

  /** Health check: answers once this object's storage does. */
  async ping(): Promise<true> {
    await this.ctx.storage.get(CLAIMED)
    return true
  }

  override async alarm(): Promise<void> {
    const storage = this.ctx.storage
    const t = Date.now()
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

function failure(error: BffError): RefreshOutcome {
  const status = error.status as ContentfulStatusCode
  return {
    ok: false,
    status,
    code: error.code,
    message: error.message,
    reason: errorReason(error.cause),
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

/**
 * The settings among a Worker's bindings, as the strings `parseConfig` reads. wrangler makes an
 * unquoted `[vars]` value (`BFF_IDLE_TIMEOUT = 300`) a number binding, and a `true` a boolean:
 * they are settings too, and must be checked like any other, not silently left at the default.
 */
export function settingsOf(env: Record<string, unknown>): Env {
  const settings: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    // No Redis on Workers: its settings do not apply (README), so a leftover one is not checked.
    if (name.startsWith('BFF_REDIS_')) continue
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      settings[name] = String(value)
    }
  }
  return settings
}

/** The test clock's service binding, or undefined when there is none (or it is no binding). */
export function testClockOf(env: { BFF_TEST_CLOCK?: unknown }): Fetcher | undefined {
  const clock = env.BFF_TEST_CLOCK as Partial<Fetcher> | undefined
  return typeof clock?.fetch === 'function' ? (clock as Fetcher) : undefined
}

/*
 * Test clock. Integration tests move the BFF's clock forward to expire access tokens without
 * waiting; on Node they inject `deps.now`, but code inside workerd cannot be reached from the test
 * process. So when the Worker has a *service binding* named `BFF_TEST_CLOCK`, every request and
 * every object call first asks it for an offset in milliseconds, which `now()` adds to `Date.now()`.
 *
 * It cannot be switched on by accident: `[vars]` and secrets are strings (or numbers, booleans)
 * and a service binding is none of these; any such `BFF_TEST_CLOCK` is refused as a configuration
 * error (src/worker.ts); wrangler.toml binds no such service, and only the test harness
 * (Miniflare, test/worker/workerd.ts) provides one. While it is on, each isolate logs a warning
 * once.
 */
let clockOffsetMs = 0
let clockWarned = false

/** Epoch milliseconds: `Date.now()` plus the test clock's offset (always 0 in production). */
export function now(): number {
  return Date.now() + clockOffsetMs
}

/** Reads the test clock's offset when the test-only binding exists; does nothing otherwise. */
export async function syncTestClock(env: { BFF_TEST_CLOCK?: unknown }): Promise<void> {
  const clock = testClockOf(env)
  if (!clock) return
  if (!clockWarned) {
    clockWarned = true
    console.warn(JSON.stringify({ level: 'warn', event: 'test_clock.enabled' }))
  }
  const offset = Number(await (await clock.fetch('http://test-clock/')).text())
  if (!Number.isFinite(offset)) throw new Error('BFF_TEST_CLOCK answered no number')
  clockOffsetMs = offset
}
