/**
 * Refresh coordination: "this session's tokens get refreshed once, whoever asks". With rotating
 * refresh tokens a second grant for the same generation presents a spent token and ends the
 * session, so concurrent refreshes must meet somewhere. Within one process they meet in
 * `singleFlight`; across instances sharing sessions, in a coordinator of the runtime's (a Redis
 * lock, a session's Durable Object), passed to `createBff` as `deps.refreshCoordinator`.
 * Coordination is its own part: a `SessionStore` only stores.
 */
import type { TraceContext } from '../observe/trace.ts'
import type { Session } from '../session/types.ts'

export interface RefreshCoordinator {
  /**
   * Given a session whose access token needs refreshing, answers the session with fresh tokens:
   * by calling `refresh` (one refresh grant), or with the result of the refresh another caller
   * already made of this generation. A coordinator that runs the grant where the callers meet (a
   * Durable Object) may use its own equivalent of `refresh`. Throws what `refresh` threw, or the
   * coordinator's own failure (its store down, a lock wait too long).
   *
   * `resource` (RFC 8707) says the change is the token of that resource rather than the session's
   * own: for a coordinator that runs its own `refresh`. Either kind spends the refresh token, so
   * they meet under the same generation: a caller may get a change made for another token, and
   * then asks again with the newer generation.
   *
   * `trace` is what `refresh`'s grants are children of (the refresh span, or the request's
   * context): for a coordinator that runs its own `refresh`, to make its grants children too.
   */
  refreshOnce(
    session: Session,
    refresh: (session: Session) => Promise<Session>,
    resource?: string,
    trace?: TraceContext
  ): Promise<Session>
}

/**
 * In-process single flight: concurrent calls for one session generation share one `refresh` and
 * its outcome; once it settles, the next call refreshes again. The token manager puts it in front
 * of every refresh, so a process asks a shared coordinator (or the IdP) once per generation, and
 * without a shared coordinator it is the whole coordination (one process: memory store, one node).
 */
export function singleFlight(): RefreshCoordinator {
  // Keyed by session id and generation: every caller holding that generation joins one grant.
  const inFlight = new Map<string, Promise<Session>>()
  return {
    refreshOnce(session, refresh) {
      const key = `${session.id}:${session.generation}`
      let pending = inFlight.get(key)
      if (!pending) {
        pending = refresh(session).finally(() => inFlight.delete(key))
        inFlight.set(key, pending)
      }
      return pending
    },
  }
}
