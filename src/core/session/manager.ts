/**
 * Binds sessions to requests: the cookie carries a sealed `SessionRef`, the store resolves it.
 * Routes ask this module for "the session of this request" and never touch cookies or stores.
 */
import type { Context } from 'hono'
import { BffError } from '../errors.ts'
import { cookieNames, isSecureOrigin } from '../security.ts'
import { deleteChunkedCookie, readChunkedCookie, writeChunkedCookie } from './cookie.ts'
import type { Sealer } from './seal.ts'
import type { Session, SessionRef, SessionStore } from './types.ts'

export interface SessionManager {
  readonly store: SessionStore
  /** The request's live session, or null. Memoised per request. */
  load(c: Ctx): Promise<Session | null>
  /** Stores a new session and sets the cookie. */
  create(c: Ctx, session: Session): Promise<void>
  /** Stores changed tokens; rewrites the cookie only when the cookie itself carries them. */
  update(c: Ctx, session: Session): Promise<void>
  /** Deletes the session from the store and the cookie from the browser. */
  destroy(c: Ctx, session: Session | null): Promise<void>
}

export interface SessionManagerOptions {
  store: SessionStore
  sealer: Sealer
  baseUrl: string
  /** Epoch milliseconds. */
  now?: () => number
}

/** Hono context variables the BFF sets; mount points may type their app with it. */
export type BffEnv = { Variables: { session: Session | null | undefined } }
type Ctx = Context<BffEnv>

export function createSessionManager(options: SessionManagerOptions): SessionManager {
  const { store, sealer } = options
  const now = options.now ?? Date.now
  const name = cookieNames(options.baseUrl).session
  const secure = isSecureOrigin(options.baseUrl)

  async function writeCookie(c: Ctx, session: Session, ref: SessionRef) {
    const ttl = session.expiresAt - Math.floor(now() / 1000)
    const sealed = await sealer.seal(ref, ttl)
    writeChunkedCookie(c, name, sealed, { secure, sameSite: 'Strict', maxAge: ttl })
  }

  return {
    store,

    async load(c) {
      const memo = c.get('session')
      if (memo !== undefined) return memo
      const sealed = readChunkedCookie(c, name)
      const ref = sealed ? await sealer.unseal<SessionRef>(sealed) : null
      const session = ref ? await reach(store.get(ref)) : null
      c.set('session', session)
      return session
    },

    async create(c, session) {
      const ref = await reach(store.set(session))
      await writeCookie(c, session, ref)
      c.set('session', session)
    },

    async update(c, session) {
      const ref = await reach(store.set(session))
      if ('session' in ref) await writeCookie(c, session, ref)
      c.set('session', session)
    },

    async destroy(c, session) {
      if (session) await reach(store.delete(session))
      deleteChunkedCookie(c, name, { secure, sameSite: 'Strict' })
      c.set('session', null)
    },
  }
}

/**
 * A store that cannot be reached is neither "logged out" nor "logged in": the request fails with
 * 503 and the session stays as it is, to work again once the store is back.
 */
async function reach<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation
  } catch (err) {
    if (err instanceof BffError) throw err
    throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
      cause: err,
    })
  }
}
