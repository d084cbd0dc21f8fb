/**
 * The only place that speaks OpenID Connect: a thin layer over openid-client v6, which does all the
 * protocol work and every check (PKCE, state, nonce, `iss`, ID token signature, `aud`, expiry).
 * openid-client errors are mapped to `BffError`s here and nowhere else.
 */
import * as jose from 'jose'
import * as client from 'openid-client'
import type { Config } from './config.ts'
import { BffError } from './errors.ts'
import type { Logger } from './log.ts'
import { createDiscovery } from './oidc-discovery.ts'
import { toBffError } from './oidc-errors.ts'

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
  /** ID token claims merged with userinfo claims; absent when the response had no ID token. */
  claims?: Record<string, unknown>
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

export interface OidcClient {
  authorizationRequest(params: { prompt?: string }): Promise<AuthorizationRequest>
  /** Finishes the code flow. Throws `BffError` 400 `invalid_callback` on any failed check. */
  callback(
    callbackUrl: URL,
    tx: LoginTransaction
  ): Promise<TokenSet & { claims: Record<string, unknown> }>
  /** Throws `BffError` 401 `session_expired` when the IdP refuses the refresh token. */
  refresh(refreshToken: string, expectedSub: string): Promise<TokenSet>
  /** RFC 7009 revocation; does nothing when the IdP has no revocation endpoint. */
  revoke(token: string, hint: 'refresh_token' | 'access_token'): Promise<void>
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

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
/** A logout token older than this is refused; its jti is remembered at least this long. */
export const LOGOUT_TOKEN_MAX_AGE_SECONDS = 300
const CLOCK_TOLERANCE_SECONDS = 30

export interface OidcDeps {
  /** Used for every call to the IdP; tests and runtimes may inject their own. */
  fetch?: typeof fetch
  /** Epoch milliseconds. */
  now?: () => number
  /** Discovery problems (and followed redirects) are logged here. */
  log?: Logger
}

/** An `openid-client` error for the user's own IdP request, e.g. `login_required` after `prompt=none`. */
// The error codes an authorization response may carry (RFC 6749 4.1.2.1, OIDC Core 3.1.2.6).
const AUTHORIZATION_ERRORS = new Set([
  'invalid_request',
  'unauthorized_client',
  'access_denied',
  'unsupported_response_type',
  'invalid_scope',
  'server_error',
  'temporarily_unavailable',
  'interaction_required',
  'login_required',
  'account_selection_required',
  'consent_required',
  'invalid_request_uri',
  'invalid_request_object',
  'request_not_supported',
  'request_uri_not_supported',
  'registration_not_supported',
])

/**
 * The IdP's `error` in the redirect back. Anyone can put any text in that URL, so only a known code
 * is kept (else `other`), and `error_description` never is: what reaches the log stays small.
 */
export class AuthorizationError extends Error {
  readonly error: string
  constructor(error: string) {
    const code = AUTHORIZATION_ERRORS.has(error) ? error : 'other'
    super(`authorization response error: ${code}`)
    this.name = 'AuthorizationError'
    this.error = code
  }
}

// Claims that describe the token rather than the user: useful to the BFF, noise to the SPA.
const PROTOCOL_CLAIMS = new Set([
  'iss',
  'aud',
  'exp',
  'iat',
  'nbf',
  'nonce',
  'at_hash',
  'c_hash',
  's_hash',
  'azp',
  'jti',
  'auth_time',
  'acr',
  'amr',
  'sid',
  'sub_jwk',
  'cnf',
])

export function createOidcClient(config: Config, deps: OidcDeps = {}): OidcClient {
  const now = deps.now ?? Date.now
  const redirectUri = `${config.baseUrl}/bff/callback`
  const { configuration, idpStatus, checkAtStartup } = createDiscovery(config, deps, redirectUri)
  let jwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined
  function lifetime(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers) {
    // Without expires_in we cannot know; assume a short life so the token is refreshed early.
    return tokens.expires_in ?? 300
  }

  function expiresAt(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers) {
    return Math.floor(now() / 1000) + lifetime(tokens)
  }

  return {
    async authorizationRequest({ prompt }) {
      const oidc = await configuration()
      const codeVerifier = client.randomPKCECodeVerifier()
      const state = client.randomState()
      const nonce = client.randomNonce()
      const params: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: config.scopes,
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      }
      if (prompt) params.prompt = prompt
      return { url: client.buildAuthorizationUrl(oidc, params), state, nonce, codeVerifier }
    },

    async callback(callbackUrl, tx) {
      const oidc = await configuration()
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>
      try {
        tokens = await client.authorizationCodeGrant(oidc, callbackUrl, {
          pkceCodeVerifier: tx.codeVerifier,
          expectedState: tx.state,
          expectedNonce: tx.nonce,
          idTokenExpected: true,
        })
      } catch (err) {
        if (err instanceof client.AuthorizationResponseError)
          throw new AuthorizationError(err.error)
        throw toBffError(err, 'callback')
      }
      const idClaims = tokens.claims()!
      const problem = await idTokenProblem(
        tokens.id_token!,
        idClaims,
        tokens.access_token,
        callbackUrl.searchParams.get('code'),
        now() / 1000
      )
      if (problem) {
        // The code is what the log shows (errorReason); the message never reaches the client.
        const cause = Object.assign(new Error(`ID token refused: ${problem}`), { code: problem })
        throw new BffError(400, 'invalid_callback', 'The login response failed validation.', {
          cause,
        })
      }
      let claims: Record<string, unknown> = { ...idClaims }
      if (oidc.serverMetadata().userinfo_endpoint) {
        try {
          // The expected subject makes openid-client refuse a userinfo answer about someone else.
          const userinfo = await client.fetchUserInfo(oidc, tokens.access_token, idClaims.sub)
          claims = { ...userinfo, ...idClaims }
        } catch (err) {
          throw toBffError(err, 'callback')
        }
      }
      return {
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token,
        idToken: tokens.id_token,
        accessTokenExpiresAt: expiresAt(tokens),
        accessTokenLifetime: lifetime(tokens),
        refreshTokenExpiresAt:
          typeof tokens.refresh_expires_in === 'number' && tokens.refresh_expires_in > 0
            ? Math.floor(now() / 1000) + tokens.refresh_expires_in
            : undefined,
        claims,
      }
    },

    async refresh(refreshToken, expectedSub) {
      const oidc = await configuration()
      try {
        const tokens = await client.refreshTokenGrant(oidc, refreshToken)
        const idClaims = tokens.claims()
        // OIDC Core 12.2: a refreshed ID token must be about the same user.
        if (idClaims && idClaims.sub !== expectedSub) {
          throw new BffError(401, 'session_expired', 'The session has ended.', {
            cause: Object.assign(new Error('refreshed ID token has a different sub'), {
              code: 'id_token_sub_changed',
            }),
          })
        }
        return {
          accessToken: tokens.access_token,
          refreshToken: tokens.refresh_token ?? refreshToken,
          idToken: tokens.id_token,
          accessTokenExpiresAt: expiresAt(tokens),
          accessTokenLifetime: lifetime(tokens),
          claims: idClaims ? { ...idClaims } : undefined,
        }
      } catch (err) {
        throw toBffError(err, 'refresh')
      }
    },

    async revoke(token, hint) {
      const oidc = await configuration()
      if (!oidc.serverMetadata().revocation_endpoint) return
      try {
        await client.tokenRevocation(oidc, token, { token_type_hint: hint })
      } catch (err) {
        throw toBffError(err, 'revocation')
      }
    },

    async endSessionUrl({ idTokenHint, postLogoutRedirectUri }) {
      const oidc = await configuration()
      if (!oidc.serverMetadata().end_session_endpoint) return null
      // Some IdPs (Glewlwyd) ignore post_logout_redirect_uri unless a state comes with it. Nothing
      // comes back to check: the landing page is the same whoever sent the browser there.
      const params: Record<string, string> = {
        post_logout_redirect_uri: postLogoutRedirectUri,
        state: client.randomState(),
      }
      if (idTokenHint) params.id_token_hint = idTokenHint
      return client.buildEndSessionUrl(oidc, params)
    },

    async validateLogoutToken(token) {
      const oidc = await configuration()
      const server = oidc.serverMetadata()
      if (!server.jwks_uri) throw invalidLogoutToken('the IdP publishes no jwks_uri')
      // jose refetches the key set when it meets an unknown kid, so IdP key rotation just works.
      jwks ??= jose.createRemoteJWKSet(new URL(server.jwks_uri), {
        timeoutDuration: config.idpTimeoutSeconds * 1000,
        ...(deps.fetch ? { [jose.customFetch]: deps.fetch } : {}),
      })
      const algorithms = (server.id_token_signing_alg_values_supported ?? ['RS256']).filter(
        (alg) => alg !== 'none' && !alg.startsWith('HS')
      )
      let payload: jose.JWTPayload
      try {
        ;({ payload } = await jose.jwtVerify(token, jwks, {
          issuer: server.issuer,
          audience: config.clientId,
          algorithms,
          maxTokenAge: LOGOUT_TOKEN_MAX_AGE_SECONDS,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          currentDate: new Date(now()),
          requiredClaims: ['iat', 'jti'],
        }))
      } catch (err) {
        throw invalidLogoutToken(err instanceof Error ? err.name : 'verification failed', err)
      }
      const events = payload.events as Record<string, unknown> | undefined
      const event = events?.[BACKCHANNEL_LOGOUT_EVENT]
      if (typeof event !== 'object' || event === null) {
        throw invalidLogoutToken('no back-channel logout event')
      }
      if ('nonce' in payload) throw invalidLogoutToken('a logout token must not carry a nonce')
      const sid = typeof payload.sid === 'string' && payload.sid ? payload.sid : undefined
      const sub = typeof payload.sub === 'string' && payload.sub ? payload.sub : undefined
      if (!sid && !sub) throw invalidLogoutToken('neither sid nor sub')
      if (payload.iat! > now() / 1000 + CLOCK_TOLERANCE_SECONDS) {
        throw invalidLogoutToken('iat in the future')
      }
      return { jti: String(payload.jti), sid, sub, iat: payload.iat! }
    },

    idpStatus,
    checkAtStartup,
  }
}

/**
 * What openid-client leaves unchecked in a token endpoint ID token: an `iat` in the future, and the
 * `at_hash` / `c_hash` (OIDC Core 3.1.3.8, 3.3.2.11) binding it to the access token and the code,
 * which are checked when present. Returns why the token is refused (a code for logs), or undefined.
 */
async function idTokenProblem(
  idToken: string,
  claims: Record<string, unknown>,
  accessToken: string,
  code: string | null,
  nowSeconds: number
): Promise<string | undefined> {
  if (typeof claims.iat === 'number' && claims.iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) {
    return 'id_token_iat_in_future'
  }
  const { alg = '' } = jose.decodeProtectedHeader(idToken)
  for (const [claim, value] of [
    ['at_hash', accessToken],
    ['c_hash', code],
  ] as const) {
    if (claims[claim] === undefined) continue
    if (value === null || claims[claim] !== (await leftHalfHash(value, alg))) {
      return `id_token_${claim}_mismatch`
    }
  }
  return undefined
}

/** The left half of `value`'s hash with the hash function of JWS `alg`, base64url; fails closed. */
async function leftHalfHash(value: string, alg: string): Promise<string | undefined> {
  const bits =
    /^[RPE]S(256|384|512)$/.exec(alg)?.[1] ?? (alg === 'EdDSA' || alg === 'Ed25519' ? '512' : '')
  if (!bits) return undefined
  const digest = new Uint8Array(
    await crypto.subtle.digest(`SHA-${bits}`, new TextEncoder().encode(value))
  )
  return jose.base64url.encode(digest.slice(0, digest.length / 2))
}

function invalidLogoutToken(reason: string, cause?: unknown) {
  return new BffError(400, 'invalid_logout_token', 'The logout token is invalid.', {
    // The reason as a code, so the log names it (`Error:iat_in_the_future`), not just `Error`.
    cause: cause ?? Object.assign(new Error(reason), { code: reason.replace(/\W+/g, '_') }),
  })
}

/** The user's claims for `/bff/user`: the ID token and userinfo claims minus protocol claims. */
export function userClaims(claims: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(claims).filter(([key]) => !PROTOCOL_CLAIMS.has(key)))
}
