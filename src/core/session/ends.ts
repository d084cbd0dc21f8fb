/**
 * Telling that sessions ended: every way a session ends (a logout, a back-channel logout, an admin
 * revocation, a refused refresh, expiry) goes through here onto the session-end bus, so each
 * instance closes its live connections of it (live.ts). Expiry has no one who ends it, so it is
 * also written to the audit trail here, once across instances, whoever finds it first: a live
 * connection's timer, or a request presenting the expired session's cookie.
 */
import type { Context } from 'hono'
import { errorReason, subjectHash } from '../observe/log.ts'
import type { BffServices } from '../services.ts'
import { EXPIRED_COOKIE_GRACE_SECONDS } from './manager.ts'
import type { ExpiryKind, SessionEnd } from './live.ts'
import type { Session } from './types.ts'

type Parts = Pick<BffServices, 'sessionEnds' | 'log'>

/**
 * Puts an end on the bus. Never throws: the session has ended already (the store said so); a bus
 * that cannot be reached only leaves other instances' connections to their timers, and is logged.
 */
export async function tellSessionEnd(s: Parts, end: SessionEnd): Promise<void> {
  try {
    await s.sessionEnds.publish(end)
  } catch (err) {
    s.log('warn', 'session_end.publish_failed', { reason: errorReason(err), why: end.reason })
  }
}

/**
 * How long the "written down once" mark of an expired session is kept: its cookie comes back at
 * the latest within its grace, and each instance's timer finds it within seconds.
 */
const ONCE_SECONDS = EXPIRED_COOKIE_GRACE_SECONDS + 300

/**
 * A session found expired: the `session_expired` audit line (reason `idle_timeout` or
 * `absolute_lifetime`) and the end on the bus, once across instances (the replay guard, shared
 * through Redis or the Durable Objects, picks the first finder). `c` is the request that presented
 * it, absent when a live connection's timer found it.
 */
export async function sessionExpired(
  s: Pick<BffServices, 'sessionEnds' | 'log' | 'audit' | 'replay'>,
  c: Context | undefined,
  session: Session | { id: string },
  kind: ExpiryKind
): Promise<void> {
  let first: boolean
  try {
    first = await s.replay.claim(`session-expired:${session.id}`, ONCE_SECONDS)
  } catch {
    // The shared guard is away: a line written twice beats a line never written.
    first = true
  }
  if (!first) return
  const full = 'sub' in session ? session : undefined
  s.log('info', 'session.expired', {
    idp: full?.idp,
    sub: full ? await subjectHash(full.sub) : undefined,
    reason: kind,
  })
  await s.audit(c, 'session_expired', { session, reason: kind })
  await tellSessionEnd(s, { reason: 'session_expired', id: session.id })
}
