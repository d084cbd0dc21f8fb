/** What the rest of the BFF sees of OpenID Connect: the client's shape and what it answers. */
import type { Logger } from '../observe/log.ts'
import type { DpopKey } from './dpop.ts'
import type { RouteGrants } from './grants.ts'
import type { TraceContext } from '../observe/trace.ts'

export interface TokenSet {
  accessToken: string
  refreshToken?: string
  idToken?: string
  /** Epoch seconds. */
  accessTokenExpiresAt: number
  /** The access token's lifetime as granted (`expires_in`), seconds. */
  accessTokenLifetime: number
  /** Epoch seconds, when the IdP says (`refresh_expires_in`, a common extension). */
  refreshTokenExpiresAt?: number
  /** The token response's `scope`: what was granted, when the IdP says. */
  scope?: string
  /** `DPoP` when the IdP bound the access token to the session's key (`token_type` `DPoP`). */
  tokenType?: 'DPoP'
  /** ID token claims merged with userinfo claims; absent when the response had no ID token. */
  claims?: Record<string, unknown>
}

/** An access token from a grant of a route's own (client credentials, token exchange). */
export interface GrantedToken {
  accessToken: string
  /** Epoch seconds. */
  expiresAt: number
  /** As granted (`expires_in`), seconds. */
  lifetime: number
  /** The scopes granted, when the IdP says. */
  scope?: string
  /** `DPoP` when the IdP bound it to the session's key. */
  tokenType?: 'DPoP'
}

export interface AuthorizationRequest {
  url: URL
  state: string
  nonce: string
  codeVerifier: string
}

export interface LoginTransaction {
  state: string
  nonce: string
  codeVerifier: string
}

/**
 * The IdP as the BFF uses it; per-route token grants in `RouteGrants` (grants.ts). A call's `trace`
 * is the work it is part of: the BFF's span for it, or the request's context. The IdP's request
 * then carries a `traceparent` naming that span, or a new child id of the request's context
 * (trace-params.ts); without `trace`, none.
 */
export interface OidcClient extends RouteGrants {
  /** Where this IdP sends the browser back: `BFF_BASE_URL` + the IdP's callback path. */
  readonly redirectUri: string
  /**
   * `acr` is sent as `acr_values` (space-separated), `maxAge` as `max_age`; the resources of
   * `user` routes as `resource` (RFC 8707).
   */
  authorizationRequest(params: {
    prompt?: string
    acr?: readonly string[]
    maxAge?: number
    /**
     * With `dpop`: the key the session will have. The code is bound to it (RFC 9449 10): a proof
     * on the pushed request under PAR, else `dpop_jkt` in the URL.
     */
    dpop?: DpopKey
    /** Under PAR, the push is a child of it. */
    trace?: TraceContext
  }): Promise<AuthorizationRequest>
  /** Finishes the code flow. Throws `BffError` 400 `invalid_callback` on any failed check. */
  callback(
    callbackUrl: URL,
    tx: LoginTransaction,
    /** With `dpop`: the new session's key; the code grant and userinfo call carry its proofs. */
    dpop?: DpopKey,
    /** The code grant is a child of it (userinfo, with no parameters, carries none). */
    trace?: TraceContext
  ): Promise<TokenSet & { claims: Record<string, unknown> }>
  /** Throws `BffError` 401 `session_expired` when the IdP refuses the refresh token. */
  refresh(
    refreshToken: string,
    expectedSub: string,
    dpop?: DpopKey,
    trace?: TraceContext
  ): Promise<TokenSet>
  /** RFC 7009 revocation; does nothing when the IdP has no revocation endpoint. */
  revoke(token: string, hint: 'refresh_token' | 'access_token', trace?: TraceContext): Promise<void>
  /** RP-initiated logout URL, or null when the IdP has no end-session endpoint. */
  endSessionUrl(params: {
    idTokenHint?: string
    postLogoutRedirectUri: string
  }): Promise<URL | null>
  /**
   * Validates an OIDC Back-Channel Logout 1.0 logout token: signature against the IdP's JWKS,
   * `iss`, `aud`, `iat` freshness, the logout event, `sid` and/or `sub`, no `nonce`, a `jti`.
   * Throws `BffError` 400 `invalid_logout_token`. Replay of the `jti` is the caller's to check.
   */
  validateLogoutToken(token: string): Promise<LogoutToken>
  /**
   * Whether discovery works: `ok`, or `unreachable` with what was wrong. Answers the last attempt's
   * outcome when it is recent, else tries now (Workers have no start-up, so the first ask tries).
   */
  idpStatus(): Promise<IdpStatus>
  /**
   * Start-up check (Node): discovers now, logs what was wrong, and keeps retrying in the background
   * with bounded backoff until it works or `signal` aborts.
   */
  checkAtStartup(signal: AbortSignal): void
}

export type IdpStatus = { idp: 'ok' } | { idp: 'unreachable'; message: string }

export interface LogoutToken {
  jti: string
  sid?: string
  sub?: string
  /** Epoch seconds. */
  iat: number
}

export interface OidcDeps {
  /** Used for every call to the IdP; tests and runtimes may inject their own. */
  fetch?: typeof fetch
  /** Epoch milliseconds. */
  now?: () => number
  /** Discovery problems (and followed redirects) are logged here. */
  log?: Logger
}
