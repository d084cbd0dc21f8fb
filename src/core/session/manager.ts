/**
 * Binds sessions to requests: the cookie carries a sealed `SessionRef`, the store resolves it.
 * Routes ask this module for "the session of this request" and never touch cookies or stores.
 * It also keeps sessions alive while used (the idle timeout slides, up to the absolute lifetime)
 * and re-seals cookies made with a retired secret.
 */
import type { Context } from 'hono'
import { BffError } from '../errors.ts'
import type { BffEnv } from '../hono-env.ts'
import type { Logger } from '../observe/log.ts'
import { cookieNames, isSecureOrigin } from './cookie-names.ts'
import {
  CookieTooLargeError,
  chunkedCookieLines,
  type CookieAttributes,
  deleteChunkedCookie,
  readChunkedCookie,
  writeChunkedCookie,
  type CookieBudget,
} from './cookie.ts'
import { packRef } from './packed-session.ts'
import { resealCache, type Reseal, type ResealCache } from './reseals.ts'
import type { SealOptions, Sealer } from './seal.ts'
import { sealedSessionCookies, type SessionCookies } from './session-cookie.ts'
import type { Session, SessionRef, SessionStore } from './types.ts'

export interface SessionManager {
  readonly store: SessionStore
  /** The request's live session, or null. Memoised per request. */
  load(c: Ctx): Promise<Session | null>
  /** Stores a new session and sets the cookie. */
  create(c: Ctx, session: Session): Promise<void>
  /**
   * Stores changed tokens or expiry; rewrites the cookie only when the cookie itself carries them.
   * Returns false when the store dropped the write (the session ended or a newer one exists);
   * when it ended, the request is logged out too (`load` answers null, the cookie is cleared).
   */
  update(c: Ctx, session: Session): Promise<boolean>
  /** Deletes the session from the store and the cookie from the browser. */
  destroy(c: Ctx, session: Session | null): Promise<void>
  /**
   * Writes the session cookie this request decided on, once the response is complete. Deferred so
   * that a slow request (say a long upstream call) cannot send an older session than a faster
   * request sent meanwhile: the newest known generation is sealed, and a write the store no
   * longer accepts is not sent at all.
   */
  commit(c: Ctx): Promise<void>
}

export interface SessionManagerOptions {
  store: SessionStore
  sealer: Sealer
  baseUrl: string
  /** Sliding idle timeout in seconds. */
  idleTimeoutSeconds: number
  /**
   * The newest generation of a session this instance knows of. A request carrying an older one (a
   * parallel tab's older cookie) is answered with, and re-sealed to, the newer tokens.
   */
  newest?: (session: Session) => Session
  /** Size limits of the session cookie; see `writeChunkedCookie`. */
  budget?: CookieBudget
  /**
   * Dot paths of the claims route policies read (`require`, the claims map): a session compacted
   * to fit the cookie keeps them, so a route does not refuse a user for the cookie's size.
   */
  policyClaims?: readonly string[]
  /**
   * Whether a stored session may still be used: one that may not (its IdP is no longer
   * configured) is ended and its cookie cleared, as an expired one.
   */
  belongs?: (session: Session) => boolean
  log?: Logger
  /** Epoch milliseconds. */
  now?: () => number
  /**
   * What presented cookies were sealed again into (see session/reseals.ts). Default: one of this
   * manager's own, 10 000 entries and 8 MiB at most.
   */
  reseals?: ResealCache
  /**
   * The cookie's forms (session/session-cookie.ts): a server store's session id in the compact
   * `<id>.<exp>.<grace>.<mac>` form. Default: every ref sealed with `sealer`, as before the compact form.
   */
  cookies?: SessionCookies
  /**
   * Told when a request presents the cookie of a session that expired (idle timeout or absolute
   * lifetime): the session cookie outlives its session by `EXPIRED_COOKIE_GRACE_SECONDS` for this.
   * The session is the whole one in `cookie` mode, else only its id.
   */
  onExpired?: (c: Ctx, expired: ExpiredSession) => Promise<void>
  /** Told of every session copy written to the store (slid, refreshed): live connections follow it. */
  onWritten?: (session: Session) => void
}

/** A session a request's cookie held, found expired. */
export interface ExpiredSession {
  /** The session (`cookie` store), or just its id (the server stores' cookies hold no more). */
  session: Session | { id: string }
  /** Its absolute lifetime ended, rather than its idle timeout. */
  final: boolean
}

/**
 * How long a session cookie outlives its session in the browser, seconds. Expired, it opens for
 * nothing but telling that the session expired (`onExpired`): a request then answers as without a
 * session, and the cookie is cleared. Without it the browser would drop the cookie at the very
 * second the session expires, and an expired session could not be told from none.
 */
export const EXPIRED_COOKIE_GRACE_SECONDS = 3600

/** A session cookie to send with the response, decided when the response is complete. */
export interface PendingCookie {
  session: Session
  ref: SessionRef
  /** Write even a server-store ref (an unchanged id), e.g. to re-seal with a new secret. */
  rewrite: boolean
  /**
   * When this write only slides or re-seals the session the request's cookie carried: that
   * cookie's re-seal (session/reseals.ts), shared with every request that comes with the same
   * cookie, so that one seal serves them all.
   */
  reseal?: Reseal
}
type Ctx = Context<BffEnv>

export function createSessionManager(options: SessionManagerOptions): SessionManager {
  const { store, sealer, idleTimeoutSeconds } = options
  const now = options.now ?? Date.now
  const name = cookieNames(options.baseUrl).session
  const secure = isSecureOrigin(options.baseUrl)
  // Sliding the expiry costs a store write (and a new cookie in cookie mode): at most once a minute.
  const touchEverySeconds = Math.min(60, Math.ceil(idleTimeoutSeconds / 10))
  const reseals = options.reseals ?? resealCache()
  const cookies = options.cookies ?? sealedSessionCookies(sealer)
  let warnedCompact = false

  /**
   * Seals `ref` into the cookie. With `reseal`, its seal serves if some request with the same old
   * cookie made one already (or is making it), and this one's is kept for the next.
   */
  async function writeCookie(c: Ctx, session: Session, ref: SessionRef, reseal?: Reseal) {
    const ttl = session.expiresAt - Math.floor(now() / 1000)
    const grace = EXPIRED_COOKIE_GRACE_SECONDS
    const attrs = { secure, sameSite: 'Strict', maxAge: ttl + grace } as const
    const final = session.expiresAt >= (session.absoluteExpiresAt ?? Infinity)
    const sealOptions = { graceSeconds: grace, final }
    c.set('sessionCookieWritten', true)
    let value: string
    if (!('session' in ref)) {
      // A server store's session id: the compact form, no seal.
      value = await cookies.idValue(ref.id, ttl, sealOptions)
    } else if (reseal) {
      reseal.sealed ??= sealToFit(ref, ttl, sealOptions, attrs).catch((err: unknown) => {
        reseal.sealed = undefined
        throw err
      })
      value = await reseal.sealed
    } else {
      value = await sealToFit(ref, ttl, sealOptions, attrs)
    }
    // A remembered seal fitted the same budget when it was made (its Max-Age only shrinks since).
    writeChunkedCookie(c, name, value, attrs, options.budget)
    if (reseal) reseal.sent = true
  }

  /** The sealed `ref` within the cookie budget: compacted if too large, else a 502. */
  async function sealToFit(
    ref: SessionRef,
    ttl: number,
    sealOptions: SealOptions,
    attrs: CookieAttributes
  ): Promise<string> {
    const sealed = await sealer.seal(packRef(ref), ttl, sealOptions)
    try {
      chunkedCookieLines(name, sealed, attrs, options.budget)
      return sealed
    } catch (err) {
      if (!(err instanceof CookieTooLargeError) || !('session' in ref)) throw err
      // Too big for the browser: keep only what the BFF needs and the SPA most likely shows.
      if (!warnedCompact) {
        warnedCompact = true
        options.log?.('warn', 'cookie.session_compacted', { bytes: err.bytes })
      }
      const compact = { session: compactSession(ref.session, options.policyClaims) }
      const smaller = await sealer.seal(packRef(compact), ttl, sealOptions)
      try {
        chunkedCookieLines(name, smaller, attrs, options.budget)
        return smaller
      } catch (again) {
        if (!(again instanceof CookieTooLargeError)) throw again
        throw new BffError(
          502,
          'session_too_large',
          'The tokens are too large for a cookie session; the operator must configure a server-side store.',
          { cause: again }
        )
      }
    }
  }

  function clearCookie(c: Ctx) {
    c.set('sessionCookieWritten', true)
    deleteChunkedCookie(c, name, { secure, sameSite: 'Strict' })
  }

  async function write(session: Session): Promise<SessionRef | null> {
    const ref = await orStoreUnavailable(store.update(session))
    if (ref) options.onWritten?.(session)
    return ref
  }

  async function update(
    c: Ctx,
    session: Session,
    rewrite = false,
    reseal?: Reseal
  ): Promise<boolean> {
    const ref = await write(session)
    if (!ref) return false
    // A session that outgrew the cookie now lives in the server store: the browser needs its id.
    const carried = c.get('sessionRef')
    const moved = !('session' in ref) && carried != null && 'session' in carried
    // A rewrite this request already decided on (a slid expiry, then a refresh) still happens:
    // else the cookie's seal would keep the older expiry and end the session before the store.
    const decided = c.get('sessionCookie')?.rewrite === true
    c.set('sessionCookie', { session, ref, rewrite: rewrite || moved || decided, reseal })
    c.set('session', session)
    return true
  }

  /**
   * After the store dropped a write: either the session ended meanwhile (a logout while this
   * request slid or refreshed it), or another instance holds a newer generation. Only the first
   * logs this request out. Answers the session as the store now has it.
   */
  async function afterDropped(c: Ctx): Promise<Session | null> {
    const ref = c.get('sessionRef')
    const current = ref ? await orStoreUnavailable(store.get(ref)) : null
    if (!current) {
      c.set('session', null)
      clearCookie(c)
    }
    return current
  }

  return {
    store,
    async update(c, session) {
      if (await update(c, session)) return true
      await afterDropped(c)
      return false
    },

    async load(c) {
      const memo = c.get('session')
      if (memo !== undefined) return memo
      const sealed = readChunkedCookie(c, name)
      // The session cookie comes with every request: it is remembered once opened.
      const opened = sealed ? await cookies.open(sealed, { cache: true }) : null
      const ref = opened?.ref ?? null
      c.set('sessionRef', ref)
      let session = ref ? await orStoreUnavailable(store.get(ref)) : null
      if (session && options.belongs && !options.belongs(session)) {
        await orStoreUnavailable(store.delete(session))
        session = null
      }
      c.set('session', session)
      if (!session) {
        // A cookie that leads nowhere (ended, expired, forged) is removed from the browser.
        if (sealed) clearCookie(c)
        // One whose seal ran out within its grace held a session that expired: say so once.
        const gone = sealed && !ref ? await cookies.expired(sealed) : null
        if (gone) c.set('sessionExpired', true)
        if (gone && options.onExpired) {
          const { value } = gone
          const expired = 'session' in value ? value.session : { id: value.id }
          if (typeof expired?.id === 'string') {
            await options.onExpired(c, { session: expired, final: gone.final })
          }
        }
        return null
      }
      const stored = session
      session = options.newest?.(session) ?? session
      const absolute = session.absoluteExpiresAt ?? session.expiresAt
      const slid = Math.min(absolute, Math.floor(now() / 1000) + idleTimeoutSeconds)
      if (slid - session.expiresAt >= touchEverySeconds || opened!.stale || session !== stored) {
        // The same old cookie again (a client that ignores Set-Cookie, requests in flight when
        // it changed): the session it slid to last time, and so the same new cookie, serve while
        // recent enough. Otherwise it slides now, and this becomes that cookie's re-seal.
        // (A server store's compact id cookie costs no seal: nothing to remember.)
        const again =
          'session' in ref! ? reseals.find(sealed!, session, slid, touchEverySeconds) : undefined
        if (again?.reseal.sent && again.session.generation === stored.generation) {
          // Its holder has been sent the new cookie: no seal, no store write, no Set-Cookie (a
          // generation change is always sent again: the old cookie's tokens are spent).
          c.set('session', again.session)
          return again.session
        }
        session = again?.session ?? { ...session, expiresAt: Math.max(slid, session.expiresAt) }
        const reseal =
          again?.reseal ?? ('session' in ref! ? reseals.start(sealed!, session) : undefined)
        // The cookie goes out again too, even one holding only an id: its Max-Age and its seal's
        // own expiry are the session's, and would otherwise end it at the first expiry.
        if (!(await update(c, session, true, reseal))) {
          const current = await afterDropped(c)
          c.set('session', current)
          return current
        }
      }
      return session
    },

    async commit(c) {
      const pending = c.get('sessionCookie')
      if (!pending) return
      c.set('sessionCookie', undefined)
      if (!('session' in pending.ref)) {
        if (pending.rewrite) await writeCookie(c, pending.session, pending.ref, pending.reseal)
        return
      }
      // The cookie carries the tokens: check again now, at the last moment, against what this
      // instance and the store know of newer generations.
      const session = options.newest?.(pending.session) ?? pending.session
      const current = await write(session)
      // A re-seal serves only the very session it was made of, not a newer generation.
      const reseal = session === pending.session ? pending.reseal : undefined
      if (current) await writeCookie(c, session, current, reseal)
    },

    async create(c, session) {
      const ref = await orStoreUnavailable(store.set(session))
      c.set('sessionCookie', { session, ref, rewrite: true })
      c.set('session', session)
    },

    async destroy(c, session) {
      if (session) await orStoreUnavailable(store.delete(session))
      c.set('sessionCookie', undefined)
      clearCookie(c)
      c.set('session', null)
    },
  }
}

/**
 * The store operation's answer, or 503 `store_unavailable` when it failed: a store that cannot be
 * reached is neither "logged out" nor "logged in", so the request fails and the session stays as
 * it is, to work again once the store is back. A BffError (a store's own refusal) passes as is.
 */
async function orStoreUnavailable<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation
  } catch (err) {
    if (err instanceof BffError) throw err
    throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
      cause: err,
    })
  }
}

// Claims a SPA typically shows, and the step-up claims routes check; everything else can be
// fetched from the IdP if ever needed.
const ESSENTIAL_CLAIMS = [
  'acr',
  'auth_time',
  'sub',
  'name',
  'given_name',
  'family_name',
  'preferred_username',
  'email',
  'email_verified',
  'picture',
  'locale',
]

/**
 * The session without what the BFF can live without: extra claims and the ID token (logout then
 * goes to the IdP without `id_token_hint`, which OIDC allows). Claims on the way to one of
 * `policyClaims` (dot paths) stay.
 */
export function compactSession(session: Session, policyClaims: readonly string[] = []): Session {
  const claims: Record<string, unknown> = {}
  for (const key of ESSENTIAL_CLAIMS) if (key in session.claims) claims[key] = session.claims[key]
  for (const key of Object.keys(session.claims)) {
    if (key === '__proto__') continue
    if (policyClaims.some((path) => path === key || path.startsWith(`${key}.`))) {
      claims[key] = session.claims[key]
    }
  }
  const compact: Session = { ...session, claims }
  delete compact.idToken
  return compact
}
