/**
 * A logged-in browser session. Everything here stays on the server side of the cookie seal:
 * the browser only ever holds an encrypted, authenticated blob.
 */
export interface Session {
  /** Random id (base64url, 256 bits); the key in server-side stores. Never shown to the browser. */
  id: string
  /** The IdP's `sid` claim when it sends one, else a random value; used by logout URLs and back-channel logout. */
  sid: string
  /** Subject of the ID token. */
  sub: string
  /** The user's claims (ID token and userinfo) minus protocol claims such as `nonce` or `at_hash`. */
  claims: Record<string, unknown>
  /** Raw ID token, kept for `id_token_hint` at logout. */
  idToken?: string
  accessToken: string
  refreshToken?: string
  /** When the access token expires, in epoch seconds. */
  accessTokenExpiresAt: number
  /** The access token's lifetime as granted (`expires_in`), seconds; absent in older sessions. */
  accessTokenLifetime?: number
  /** When the session was created, in epoch seconds. */
  createdAt: number
  /**
   * The same in epoch milliseconds: a back-channel logout ends the sessions created up to its
   * moment, and a login in that same second must survive it. Absent in sessions from before it.
   */
  createdAtMs?: number
  /**
   * When the session ends unless it is used again, in epoch seconds: slides with activity (the idle
   * timeout) but never past `absoluteExpiresAt`. Stores expire sessions at this time.
   */
  expiresAt: number
  /** When the session ends no matter what, in epoch seconds; absent means `expiresAt`. */
  absoluteExpiresAt?: number
  /** Incremented on every token change, so a stale write can be recognised. */
  generation: number
}

/**
 * What the session cookie carries once sealed: the whole session (`cookie` store) or only its id
 * (server-side stores). Stores decide which; the cookie layer only seals and unseals it.
 */
export type SessionRef = { id: string } | { session: Session }

/**
 * Where sessions live. The core never knows which store it has; one contract suite
 * (`test/core/session/store-contract.ts`) runs against every implementation.
 */
export interface SessionStore {
  /** `cookie`, `memory`, `redis` or `durable-object`: for logs and health output. */
  readonly kind: string
  /** Saves the session until `session.expiresAt` and returns what the cookie must carry. */
  set(session: Session): Promise<SessionRef>
  /**
   * Rewrites an existing session (new tokens, a slid expiry) only if it still exists and the stored
   * generation is not newer; answers null when the write was dropped. Stores without it get `set`.
   */
  update?(session: Session): Promise<SessionRef | null>
  /** The live session a cookie refers to, or null when it is unknown, deleted or expired. */
  get(ref: SessionRef): Promise<Session | null>
  /** Ends one session; later `get`s of any ref to it answer null. */
  delete(session: Session): Promise<void>
  /** Ends every session with this IdP session id (back-channel logout); returns how many it knew of. */
  deleteBySid(sid: string): Promise<number>
  /** Ends every session of this subject; returns how many it knew of. */
  deleteBySub(sub: string): Promise<number>
  /** Optional: the live sessions of a subject, for the admin API. A cookie store cannot list. */
  listBySub?(sub: string): Promise<Session[]>
  /** Throws when the store cannot be reached; used by `/bff/health`. */
  ping(): Promise<void>
  /**
   * Optional: makes a refresh happen once across every instance sharing this store. Given a session
   * whose access token needs refreshing, answers the session with fresh tokens, calling `refresh` (or
   * an equivalent inside the store, e.g. a Durable Object) only if no other instance has already
   * refreshed this generation. Stores without it get single-flight within one process only.
   */
  refreshOnce?(session: Session, refresh: (session: Session) => Promise<Session>): Promise<Session>
}
