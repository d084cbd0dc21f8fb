/**
 * In `cookie` mode no server holds the session, so the server remembers two things about sessions
 * it does not hold: which are dead ("delete" means "remember that it is dead until its cookie would
 * have expired anyway"), and each session's newest generation, so a slow response can never write
 * an older cookie over a newer one.
 */
import type { Session } from './types.ts'

export interface RevocationList {
  /** Revokes one session (logout) until `until` (epoch seconds). */
  revokeSession(id: string, until: number): Promise<void>
  /**
   * Revokes every session with this IdP session id created up to now (back-channel logout); with
   * `idp`, only that IdP's sessions and those with no recorded idp (see `revokedScopes`).
   */
  revokeSid(sid: string, until: number, idp?: string): Promise<void>
  /** Revokes every session of this subject created up to now (of `idp` only, as `revokeSid`). */
  revokeSub(sub: string, until: number, idp?: string): Promise<void>
  isRevoked(session: Session): Promise<boolean>
  /**
   * Optional generation ledger: records that `generation` of session `id` exists, until `until`
   * (epoch seconds). Without it, a stale cookie write cannot be told from a fresh one.
   */
  recordGeneration?(id: string, generation: number, until: number): Promise<void>
  /** The newest generation recorded for session `id`, or 0. */
  latestGeneration?(id: string): Promise<number>
}

/**
 * Sid and sub revocations are kept per scope, by the same raw sid or sub as before IdPs were told
 * apart (what a list already holds stays valid):
 * - the plain one (scope null), from a revocation without `idp`: ends every session of that sid
 *   or sub, whatever its IdP;
 * - an IdP's (scope: its name), from a revocation with that `idp`: ends that IdP's sessions only;
 * - NO_IDP's, written by every revocation with an `idp` as well: sessions with no recorded idp
 *   (from before it was recorded) are checked against the plain scope and this one only, since
 *   which IdP they came from is unknown; so any IdP's revocation ends them (ended rather than
 *   missed, as `SessionStore.deleteBySid` says) and never another IdP's sessions.
 * NO_IDP is the empty string, which no IdP is named (names match /^[A-Za-z0-9_-]{1,64}$/).
 */
export const NO_IDP = ''

/** The scopes a sid or sub revocation (with `idp` or without) is recorded under. */
export function revokedScopes(idp: string | undefined): (string | null)[] {
  return idp === undefined ? [null] : [idp, NO_IDP]
}

/** The scope of `session` besides the plain one: its IdP's, or NO_IDP when it has none. */
export function sessionScope(session: Session): string {
  return session.idp ?? NO_IDP
}

/** The scopes of the sid and sub revocations that can end `session`. */
export function checkedScopes(session: Session): (string | null)[] {
  return [null, sessionScope(session)]
}

/**
 * A revocation time in epoch milliseconds: one stored in epoch seconds (before milliseconds, still
 * in Redis or an object) lasts to the end of its second.
 */
export function revocationMs(revokedAt: number): number {
  return revokedAt < 1e11 ? revokedAt * 1000 + 999 : revokedAt
}

/**
 * Whether a `sid` or `sub` revocation made at `revokedAt` (epoch milliseconds) ends `session`: it
 * ends the sessions created up to that moment, so a login a millisecond later is a new one. A
 * session from before `createdAtMs` counts from the start of its second; for a revocation stored in
 * epoch seconds see `revocationMs`.
 */
export function revokedBy(revokedAt: number | null | undefined, session: Session): boolean {
  if (revokedAt === null || revokedAt === undefined || !Number.isFinite(revokedAt)) return false
  return (session.createdAtMs ?? session.createdAt * 1000) <= revocationMs(revokedAt)
}

/** Sid or sub revocations by scope (see NO_IDP), then by value. */
type Revoked = Map<string | null, Map<string, [number, number]>>

export function memoryRevocationList(now: () => number = Date.now): RevocationList {
  const sessions = new Map<string, number>()
  // scope -> sid or sub -> [revoked at (ms), keep until (s)]: sessions created later are new
  // logins. Nested by scope rather than keyed by one string of both: a check runs on every call of
  // a cookie session, and builds no key this way.
  const sids: Revoked = new Map()
  const subs: Revoked = new Map()
  // id -> [generation, keep until]
  const generations = new Map<string, [number, number]>()
  let writes = 0

  function sweep() {
    // Amortised clean-up instead of timers, which Workers do not allow outside a request.
    if (++writes % 256 !== 0) return
    const t = now() / 1000
    for (const [k, until] of sessions) if (until <= t) sessions.delete(k)
    for (const revoked of [sids, subs]) {
      for (const [scope, values] of revoked) {
        for (const [k, [, until]] of values) if (until <= t) values.delete(k)
        if (values.size === 0) revoked.delete(scope)
      }
    }
    for (const [k, [, until]] of generations) if (until <= t) generations.delete(k)
  }

  function revoke(revoked: Revoked, value: string, until: number, idp?: string) {
    for (const scope of revokedScopes(idp)) {
      let values = revoked.get(scope)
      if (!values) revoked.set(scope, (values = new Map()))
      values.set(value, [now(), Math.max(until, values.get(value)?.[1] ?? 0)])
    }
    sweep()
  }

  // The two scopes of `checkedScopes`, without making its array on every call.
  function revokedIn(revoked: Revoked, value: string, session: Session) {
    if (revoked.size === 0) return false
    return (
      revokedBy(revoked.get(null)?.get(value)?.[0], session) ||
      revokedBy(revoked.get(sessionScope(session))?.get(value)?.[0], session)
    )
  }

  return {
    async revokeSession(id, until) {
      sessions.set(id, until)
      sweep()
    },
    async revokeSid(sid, until, idp) {
      revoke(sids, sid, until, idp)
    },
    async revokeSub(sub, until, idp) {
      revoke(subs, sub, until, idp)
    },
    async recordGeneration(id, generation, until) {
      if ((generations.get(id)?.[0] ?? 0) < generation) generations.set(id, [generation, until])
      sweep()
    },
    async latestGeneration(id) {
      return generations.get(id)?.[0] ?? 0
    },
    async isRevoked(session) {
      if (sessions.has(session.id)) return true
      return revokedIn(sids, session.sid, session) || revokedIn(subs, session.sub, session)
    },
  }
}
