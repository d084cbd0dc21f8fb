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
  /** Revokes every session with this IdP session id created up to now (back-channel logout). */
  revokeSid(sid: string, until: number): Promise<void>
  /** Revokes every session of this subject created up to now. */
  revokeSub(sub: string, until: number): Promise<void>
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
 * Whether a `sid` or `sub` revocation made at `revokedAt` (epoch milliseconds) ends `session`: it
 * ends the sessions created up to that moment, so a login a millisecond later is a new one. A
 * session from before `createdAtMs` counts from the start of its second; a revocation stored in
 * epoch seconds (before milliseconds, still in Redis or an object) lasts to the end of its second.
 */
export function revokedBy(revokedAt: number | null | undefined, session: Session): boolean {
  if (revokedAt === null || revokedAt === undefined || !Number.isFinite(revokedAt)) return false
  const atMs = revokedAt < 1e11 ? revokedAt * 1000 + 999 : revokedAt
  return (session.createdAtMs ?? session.createdAt * 1000) <= atMs
}

export function memoryRevocationList(now: () => number = Date.now): RevocationList {
  const sessions = new Map<string, number>()
  // sid or sub -> [revoked at (ms), keep until (s)]: sessions created later are new logins.
  const sids = new Map<string, [number, number]>()
  const subs = new Map<string, [number, number]>()
  // id -> [generation, keep until]
  const generations = new Map<string, [number, number]>()
  let writes = 0

  function sweep() {
    // Amortised clean-up instead of timers, which Workers do not allow outside a request.
    if (++writes % 256 !== 0) return
    const t = now() / 1000
    for (const [k, until] of sessions) if (until <= t) sessions.delete(k)
    for (const [k, [, until]] of sids) if (until <= t) sids.delete(k)
    for (const [k, [, until]] of subs) if (until <= t) subs.delete(k)
    for (const [k, [, until]] of generations) if (until <= t) generations.delete(k)
  }

  return {
    async revokeSession(id, until) {
      sessions.set(id, until)
      sweep()
    },
    async revokeSid(sid, until) {
      sids.set(sid, [now(), Math.max(until, sids.get(sid)?.[1] ?? 0)])
      sweep()
    },
    async revokeSub(sub, until) {
      subs.set(sub, [now(), Math.max(until, subs.get(sub)?.[1] ?? 0)])
      sweep()
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
      return (
        revokedBy(sids.get(session.sid)?.[0], session) ||
        revokedBy(subs.get(session.sub)?.[0], session)
      )
    },
  }
}
