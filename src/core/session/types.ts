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
  /**
   * The user's claims: the ID token's (with `acr` and `auth_time`, which step-up checks read) and
   * userinfo's.
   */
  claims: Record<string, unknown>
  /**
   * The name of the IdP the session came from (`Config.idpName`); absent in sessions from before
   * it was recorded, which then match no route's `idps`.
   */
  idp?: string
  /**
   * The scopes granted, space-separated: the token response's `scope` at login and at each
   * refresh, or the scopes requested when the IdP does not say (RFC 6749 5.1). Absent in sessions
   * from before it was recorded, which then carry no scope a route could require.
   */
  scope?: string
  /** Raw ID token, kept for `id_token_hint` at logout. */
  idToken?: string
  accessToken: string
  refreshToken?: string
  /**
   * With `dpop` (RFC 9449): the session's own ES256 private key, made at login and never changed;
   * the IdP binds the session's tokens to it, and each token and upstream call carries a proof
   * signed with it. Sealed inside the cookie in `cookie` mode, like the tokens it protects.
   */
  dpopKey?: DpopJwk
  /** `DPoP` when the IdP bound the access token to `dpopKey`: upstreams get `Authorization: DPoP`. */
  tokenType?: 'DPoP'
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
  /**
   * RFC 8707: the token of each resource named by a `user` route, by resource. Each comes from a
   * refresh-token grant with `resource` and is refreshed on its own; a route only ever gets the
   * token of its own resource.
   */
  resourceTokens?: Record<string, RouteToken>
  /**
   * RFC 8693: tokens exchanged from `accessToken` for `exchange` routes, by resource and scopes
   * (see tokens/exchange-token.ts). Each remembers which access token it came from: once that is
   * refreshed, the route's next call exchanges again.
   */
  exchangedTokens?: Record<string, ExchangedToken>
}

/** An access token for one route's upstream, kept with the session. */
export interface RouteToken {
  accessToken: string
  /** Epoch seconds. */
  expiresAt: number
  /** The lifetime as granted (`expires_in`), seconds. */
  lifetime: number
  /** `DPoP` when the IdP bound it to the session's key. */
  tokenType?: 'DPoP'
}

/** A token exchanged from the session's access token. Times in epoch seconds. */
export interface ExchangedToken {
  accessToken: string
  expiresAt: number
  /** From when it is exchanged again: shortly before it expires. */
  renewAt: number
  /** A digest of the access token it was exchanged from. */
  subject: string
  /** `DPoP` when the IdP bound it to the session's key. */
  tokenType?: 'DPoP'
}

/**
 * What the session cookie carries once sealed: the whole session (`cookie` store) or only its id
 * (server-side stores). Stores decide which; the cookie layer only seals and unseals it.
 */
export type SessionRef = { id: string } | { session: Session }

/**
 * Where sessions live: storage only (refresh coordination is its own part, `RefreshCoordinator`
 * in src/core/tokens/). The core never knows which store it has; one contract suite
 * (`testStore` in src/testing/store-contract.ts, the package's `./testing`) runs against every
 * implementation.
 */
export interface SessionStore {
  /** `cookie`, `memory`, `redis` or `durable-object`: for logs and health output. */
  readonly kind: string
  /** Saves the session until `session.expiresAt` and returns what the cookie must carry. */
  set(session: Session): Promise<SessionRef>
  /**
   * Rewrites an existing session (new tokens, a slid expiry), never backwards: only if it was not
   * deleted and the stored generation is not newer. Answers null when the write was dropped, so a
   * slow request can neither restore spent tokens nor revive a logged-out session. A store that
   * holds no sessions (`cookie`) checks what it can: its revocations and the newest generation it
   * handed out.
   */
  update(session: Session): Promise<SessionRef | null>
  /** The live session a cookie refers to, or null when it is unknown, deleted or expired. */
  get(ref: SessionRef): Promise<Session | null>
  /** Ends one session; later `get`s of any ref to it answer null. */
  delete(session: Session): Promise<void>
  /**
   * Ends every session with this IdP session id (back-channel logout); returns how many it knew of.
   * With `idp`, only the sessions of that IdP (by `Session.idp`): a user is the pair (idp, sub),
   * and one IdP must never end another's sessions. Sessions with no recorded `idp` (from before it
   * was recorded) match any `idp`, so an older session is ended rather than missed.
   */
  deleteBySid(sid: string, idp?: string): Promise<number>
  /** Ends every session of this subject (of `idp` only, when given: see `deleteBySid`). */
  deleteBySub(sub: string, idp?: string): Promise<number>
  /**
   * The live sessions of a subject (of `idp` only, when given), for the admin API. A store whose
   * sessions live only in browsers' cookies cannot list them: it throws a `BffError` with code
   * `not_supported` (501), and its `deleteBy*` revoke without counting (they answer 0).
   */
  listBySub(sub: string, idp?: string): Promise<Session[]>
  /** Throws when the store cannot be reached; used by `/bff/health`. */
  ping(): Promise<void>
}

/** A session's DPoP key (RFC 9449): an EC P-256 private JWK. */
export interface DpopJwk {
  kty: 'EC'
  crv: 'P-256'
  x: string
  y: string
  d: string
}
