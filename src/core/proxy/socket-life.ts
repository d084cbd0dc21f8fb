/**
 * How long a proxied WebSocket may live: as long as its session. The socket is registered with the
 * instance's live connections (`services.live`), which tell it when the session ends anywhere
 * (logout, back-channel, admin, expiry, a refused refresh): it then closes with 1008 and
 * `session_ended:<reason>`. The upstream checked the route's token once, at the upgrade, and gets
 * no other on an open socket; so the session is asked to refresh when that token expires, and a
 * session that can no longer refresh ends, closing the socket with it.
 *
 * A session carried whole in the cookie (the `cookie` store) cannot be refreshed from a socket: the
 * rotated refresh token would stay on the server while the browser's cookie holds the spent one,
 * and the next call of the page would end the session. Such a socket closes when the token
 * expires (1008 `token_expired`); the page opens it again, and that upgrade refreshes the session
 * and sets the new cookie on its 101 answer.
 */
import type { Context } from 'hono'
import { BffError } from '../errors.ts'
import type { BffEnv } from '../hono-env.ts'
import { freshSession } from '../routes/fresh-session.ts'
import type { BffServices } from '../services.ts'
import type { LiveLease, LiveRefusal } from '../session/live.ts'
import type { Session } from '../session/types.ts'
import { refreshSkewFor } from '../tokens/token-manager.ts'

/** RFC 6455 7.4.1: the close code of a socket ended by policy (its session ended). */
export const POLICY_CLOSE = 1008

/** Between two tries when the IdP or the store failed for a moment: the socket stays open. */
const RETRY_MS = 5000
/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days); a later check waits in steps. */
const MAX_DELAY_MS = 2 ** 31 - 1

/** A socket's ties to its session, handed to the runtime that relays it. */
export interface SocketLife {
  /**
   * `listener(code, reason)` is called once, when the socket must close (both sides): the session
   * ended, or its token expired and cannot be renewed. At once if that time has already come.
   */
  onClose(listener: (code: number, reason: string) => void): void
  /** The socket closed, or never opened: frees its place among the live connections, stops watching. */
  release(): void
}

/**
 * The life of a socket of `session` (none: a route without a user, whose socket lives until one
 * side closes it), or the refusal of the live-connection limits.
 */
export function socketLife(
  s: BffServices,
  c: Context<BffEnv>,
  session: Session | null
): SocketLife | LiveRefusal {
  let listener: ((code: number, reason: string) => void) | undefined
  let closing: [number, string] | undefined
  let released = false
  let lease: LiveLease | undefined = undefined
  let unwatch: (() => void) | undefined = undefined

  const stop = () => {
    unwatch?.()
    lease?.release()
  }
  const close = (code: number, reason: string) => {
    if (released || closing) return
    closing = [code, reason]
    stop()
    listener?.(code, reason)
  }
  const life: SocketLife = {
    onClose(callback) {
      listener = callback
      if (closing && !released) callback(...closing)
    },
    release() {
      if (released) return
      released = true
      stop()
    },
  }
  if (!session) return life

  const opened = s.live.open(session, (reason) => close(POLICY_CLOSE, `session_ended:${reason}`))
  if ('refused' in opened) return opened
  lease = opened
  const ref = c.get('sessionRef')
  // The cookie holds the whole session (the `cookie` store): it cannot be refreshed from here.
  // Such a socket keeps nothing of the request (`c`): an idle socket costs less.
  unwatch =
    ref == null || 'session' in ref
      ? after(session.accessTokenExpiresAt * 1000 - s.now(), () =>
          close(POLICY_CLOSE, 'token_expired')
        )
      : keepRefreshed(s, c, ref, session, close)
  return life
}

/** Calls `run` in `ms` (later than setTimeout's longest delay too); answers how to cancel. */
function after(ms: number, run: () => void): () => void {
  const delay = Math.min(Math.max(ms, 0), MAX_DELAY_MS)
  let next: (() => void) | undefined
  const timer = setTimeout(() => (delay < ms ? (next = after(ms - delay, run)) : run()), delay)
  return () => {
    clearTimeout(timer)
    next?.()
  }
}

/**
 * Refreshes a server-side session when its token is due, for as long as the socket is open;
 * `close` when the session has ended (the IdP refused its refresh token, it had none, it is gone
 * from the store). Answers how to stop.
 */
function keepRefreshed(
  s: BffServices,
  c: Context<BffEnv>,
  ref: { id: string },
  session: Session,
  close: (code: number, reason: string) => void
): () => void {
  let cancel: (() => void) | undefined
  let stopped = false
  const schedule = (ms: number) => {
    if (!stopped) cancel = after(ms, () => void check())
  }
  /** Waits until the token is due: at expiry less the refresh skew, or at expiry without refresh. */
  const watch = (current: Session, atLeastMs = 0) => {
    const skew = current.refreshToken ? refreshSkewFor(current, s.config.refreshSkewSeconds) : 0
    schedule(Math.max((current.accessTokenExpiresAt - skew) * 1000 - s.now(), atLeastMs))
  }
  let current = session
  const check = async () => {
    let stored: Session | null
    try {
      // The newest generation: the page's own calls may have refreshed the session meanwhile, and
      // refreshing an older one would spend a refresh token the IdP has already rotated.
      stored = await s.sessions.store.get(ref)
    } catch {
      return schedule(RETRY_MS)
    }
    if (stopped) return
    if (!stored) return close(POLICY_CLOSE, 'session_ended:session_expired')
    try {
      const result = await freshSession(s, c, stored)
      if (stopped) return
      if (result.kind === 'error') return schedule(RETRY_MS) // the IdP is away: try again
      // No newer token (a refresh failing for a moment while the old one still works): not before
      // RETRY_MS, so a token within its skew is not asked about in a loop.
      const renewed = result.session.accessTokenExpiresAt > current.accessTokenExpiresAt
      current = result.session
      watch(current, renewed ? 0 : RETRY_MS)
    } catch (err) {
      if (stopped) return
      if (!(err instanceof BffError) || err.status !== 401) return schedule(RETRY_MS)
      // freshSession ended the session (the IdP refused its refresh token, or it had none).
      const reason = stored.refreshToken ? 'refresh_failed' : 'session_expired'
      close(POLICY_CLOSE, `session_ended:${reason}`)
    }
  }
  watch(session)
  return () => {
    stopped = true
    cancel?.()
  }
}
