/**
 * The Durable Object that holds one session: reads, writes (never backwards: `update` needs a live
 * session of the same or an older generation), the end of it, its token refresh, and for the
 * `cookie` store the tombstone, newest generation and last refresh result of its session id.
 *
 * Token refresh runs here (`refresh`, `refreshCarried`): the object is the one place every
 * isolate's requests for a session meet, so it alone spends a refresh token, once.
 *
 * How to refresh is not this module's business: the Workers entry hands it down (worker.ts
 * subclasses this class with a `refresher()` built from the Worker's settings), so the object
 * depends on the session types and nothing above them (no config, OIDC or token code). The
 * alternative, the caller refreshing while the object only hands out a lock, would spread one
 * refresh over several RPCs with a lease to expire when a caller dies mid-grant; here the grant
 * runs inside the one place that decides, and completes even if the calling request goes away.
 */
import { DurableObject } from 'cloudflare:workers'
import { BffError } from '../../core/errors.ts'
import type { TraceContext } from '../../core/observe/trace.ts'
import { ofIdp } from '../../core/session/idp-scope.ts'
import type { Session } from '../../core/session/types.ts'
import { indexObject, type SessionObjectEnv } from './bindings.ts'
import { failure, type RefreshOutcome } from './refresh-outcome.ts'
import { acceptListener, announceEnd, closeListener } from './session-ends.ts'
import type { SessionEnd } from '../../core/session/live.ts'
import type {
  Request as WorkersRequest,
  Response as WorkersResponse,
  WebSocket as WorkersWebSocket,
} from '@cloudflare/workers-types/latest'
import { now, syncTestClock } from './test-clock.ts'

/**
 * Brings a session's access token up to date: the session as it is while its token is fresh, else
 * with new tokens and the next generation; throws a BffError when it cannot. With `resource`, the
 * same for the session's token of that resource (RFC 8707). Concurrent calls for one generation
 * must share one grant (the token manager's single flight does).
 */
/** `trace`: what the refresh's grants at the IdP are children of (the caller's refresh span). */
export type SessionRefresher = (
  session: Session,
  resource?: string,
  trace?: TraceContext
) => Promise<Session>

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

/**
 * Holds one session: reads, writes, the end of it, and its token refresh. The Worker exports it
 * as `SessionObject`, with its `refresher` (worker.ts).
 */
export abstract class SessionObjectBase extends DurableObject<SessionObjectEnv> {
  /** How this object refreshes tokens: given by the Workers entry, from the Worker's settings. */
  protected abstract refresher(): SessionRefresher

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
   * `remove` for an index ending one IdP's sessions (`deleteBySid`/`deleteBySub` with `idp`):
   * answers 'other' and keeps the session when it came from another IdP; one with no recorded idp
   * goes too (an older session is ended rather than missed).
   */
  async removeOf(from: 'sid' | 'sub', idp: string): Promise<boolean | 'other'> {
    await syncTestClock(this.env)
    const session = await this.ctx.storage.get<Session>(SESSION)
    if (session && !ofIdp(session, idp)) return 'other'
    return this.remove(from)
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
   * The session with fresh tokens (`resource`: a fresh token for that resource), refreshing them
   * here at most once per generation: a caller holding an older generation than the stored one
   * gets the stored session and no grant. The grant is a child of `trace`, the caller's.
   */
  async refresh(
    generation: number,
    resource?: string,
    trace?: TraceContext
  ): Promise<RefreshOutcome> {
    const stored = await this.read()
    if (!stored) return failure(new BffError(401, 'session_expired', 'The session has ended.'))
    if (stored.generation > generation) return { ok: true, session: stored }
    const outcome = await this.refreshed(stored, resource, trace)
    if (!outcome.ok || outcome.session.generation <= stored.generation) return outcome
    if (!(await this.write(outcome.session, 'update'))) {
      // Ended (logged out) while the grant ran: the new tokens must not revive it.
      return failure(new BffError(401, 'session_expired', 'The session has ended.'))
    }
    return outcome
  }

  /**
   * `cookie` store: refreshes the tokens of the session the caller's cookie carries, once per
   * generation; a caller with an older generation than the last refresh gets that refresh's result.
   */
  async refreshCarried(
    session: Session,
    resource?: string,
    trace?: TraceContext
  ): Promise<RefreshOutcome> {
    await syncTestClock(this.env)
    if (await this.endedUntil()) {
      return failure(new BffError(401, 'session_expired', 'The session has ended.'))
    }
    const storage = this.ctx.storage
    const last = await storage.get<Kept<Session>>(REFRESHED)
    if (last && last.until * 1000 > now() && last.value.generation > session.generation) {
      return { ok: true, session: last.value }
    }
    const outcome = await this.refreshed(session, resource, trace)
    if (outcome.ok && outcome.session.generation > session.generation) {
      const until = (now() + REFRESHED_MS) / 1000
      await storage.put(REFRESHED, { value: outcome.session, until })
      await this.scheduleAlarm(until)
    }
    return outcome
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

  /**
   * Live connections of this session listen here (session-ends.ts): a WebSocket per connection,
   * hibernatable; an end by id is told to them by `announce`.
   */
  override async fetch(request: WorkersRequest): Promise<WorkersResponse> {
    return acceptListener(this.ctx, request) as unknown as WorkersResponse
  }

  /** How many live connections listen here now (for operators and tests). */
  async listening(): Promise<number> {
    return this.ctx.getWebSockets().length
  }

  /** Tells the live connections listening here that the session ended. */
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

  override async alarm(): Promise<void> {
    // Alarms fire on real time; what they keep or drop is judged by the clock requests see.
    await syncTestClock(this.env)
    const storage = this.ctx.storage
    const session = await storage.get<Session>(SESSION)
    const until = Math.max(
      session?.expiresAt ?? 0,
      (await storage.get<number>(ENDED)) ?? 0,
      (await storage.get<Kept<number>>(GENERATION))?.until ?? 0,
      (await storage.get<Kept<Session>>(REFRESHED))?.until ?? 0
    )
    if (until * 1000 > now()) return storage.setAlarm(until * 1000)
    if (session) await this.unindex(session)
    await storage.deleteAll()
  }

  /**
   * The refresher's answer as plain data for the caller (a refusal included). The refresher
   * joins concurrent calls for one generation into one grant.
   */
  private async refreshed(
    session: Session,
    resource?: string,
    trace?: TraceContext
  ): Promise<RefreshOutcome> {
    try {
      return { ok: true, session: await this.refresher()(session, resource, trace) }
    } catch (err) {
      if (err instanceof BffError) return failure(err)
      throw err
    }
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
