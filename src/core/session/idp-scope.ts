/**
 * A user is the pair (idp, sub): the `idp` that `deleteBySid`, `deleteBySub` and `listBySub` take.
 * Stores keep their indexes by the raw sid and sub (no migration of what they already hold) and
 * filter by the session's own `idp` when they end or list.
 */
import type { Session } from './types.ts'

/**
 * Whether `session` is one of `idp`'s: every session when no `idp` is given, and a session with no
 * recorded idp (from before it was recorded) for any `idp`, so an older session is ended rather
 * than missed.
 */
export function ofIdp(session: Pick<Session, 'idp'>, idp: string | undefined): boolean {
  return idp === undefined || session.idp == null || session.idp === idp
}
