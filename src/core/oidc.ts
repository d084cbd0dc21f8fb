/**
 * The only place that speaks OpenID Connect: a thin layer over openid-client v6, which does all the
 * protocol work and every check (PKCE, state, nonce, `iss`, ID token signature, `aud`, expiry).
 * openid-client errors are mapped to `BffError`s here and nowhere else.
 */
import * as jose from 'jose'
import * as client from 'openid-client'
import type { Config } from './config.ts'
import { BffError } from './errors.ts'
import { errorReason, type Logger } from './log.ts'

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

/** Same-origin redirects followed for the discovery document (django-oauth-toolkit adds a slash). */
const MAX_DISCOVERY_REDIRECTS = 3
/** Background discovery retries: the first delay, doubled each time up to the last. */
const DISCOVERY_RETRY_MS = { first: 1000, max: 60_000 }
/** How long `idpStatus` answers a failed attempt before trying again. */
const STATUS_RECHECK_MS = 5000

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
  const log = deps.log ?? (() => {})
  let discovered: Promise<client.Configuration> | undefined
  let jwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined
  // The last discovery outcome, for `/bff/health` and for logging a change only once.
  let last: { ok: true } | { ok: false; message: string; at: number } | undefined
  const discoveryUrl = new URL(
    `${config.issuer.pathname.replace(/\/$/, '')}/.well-known/openid-configuration`,
    config.issuer
  ).href

  // Discovery is cached for the life of the process; a failure is not, so the next request retries.
  function configuration(): Promise<client.Configuration> {
    discovered ??= discover().then(
      (result) => {
        if (last && !last.ok) log('info', 'oidc.discovery_ok', { url: discoveryUrl })
        last = { ok: true }
        return result
      },
      (err) => {
        discovered = undefined
        const problem = discoveryProblem(err)
        // Logged when the problem changes, not on every request while the IdP is away.
        if (last?.ok !== false || last.message !== problem.message) {
          log('error', 'oidc.discovery_failed', { url: discoveryUrl, ...problem })
        }
        last = { ok: false, message: problem.message, at: now() }
        throw toBffError(err, 'discovery')
      }
    )
    return discovered
  }

  async function discover() {
    const options: client.DiscoveryRequestOptions = {
      timeout: config.idpTimeoutSeconds,
      execute: config.issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [],
    }
    options[client.customFetch] = followSameOrigin(idpFetch(deps.fetch), (from, to) =>
      log('warn', 'oidc.discovery_redirected', { from, to })
    )
    const result = await client.discovery(
      config.issuer,
      config.clientId,
      { redirect_uris: [redirectUri], response_types: ['code'] },
      config.clientAuth === 'client_secret_post'
        ? client.ClientSecretPost(config.clientSecret)
        : client.ClientSecretBasic(config.clientSecret),
      options
    )
    // Only the discovery document may redirect; every later call uses the plain fetch.
    result[client.customFetch] = idpFetch(deps.fetch)
    result.timeout = config.idpTimeoutSeconds
    // openid-client trusts TLS for ID tokens from the token endpoint and checks no signature unless
    // told to. Checked, an ID token signed with `none`, an unknown key or an ambiguous kid is refused.
    client.enableNonRepudiationChecks(result)
    return result
  }

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

    async idpStatus() {
      if (last && !last.ok && now() - last.at < STATUS_RECHECK_MS && !discovered) {
        return { idp: 'unreachable', message: last.message }
      }
      try {
        await configuration()
        return { idp: 'ok' }
      } catch {
        return { idp: 'unreachable', message: last && !last.ok ? last.message : 'unknown' }
      }
    },

    checkAtStartup(signal) {
      let delay = DISCOVERY_RETRY_MS.first
      let timer: ReturnType<typeof setTimeout> | undefined
      signal.addEventListener('abort', () => clearTimeout(timer))
      const attempt = () => {
        if (signal.aborted || last?.ok) return
        configuration().catch(() => {
          if (signal.aborted) return
          log('warn', 'oidc.discovery_retry', { url: discoveryUrl, inSeconds: delay / 1000 })
          timer = setTimeout(attempt, delay)
          delay = Math.min(delay * 2, DISCOVERY_RETRY_MS.max)
        })
      }
      attempt()
    },
  }
}

/**
 * Follows redirects of the discovery document on the issuer's own origin, a bounded number of
 * times (django-oauth-toolkit 1.7 answers 301 to add a trailing slash); a redirect to another
 * origin is refused, since the document says where tokens and codes go.
 */
function followSameOrigin(
  fetchImpl: client.CustomFetch,
  onRedirect: (from: string, to: string) => void
): client.CustomFetch {
  return async (url, init) => {
    let current = url
    for (let hops = 0; ; hops++) {
      const response = await fetchImpl(current, init)
      const location = response.headers.get('location')
      if (response.status < 300 || response.status >= 400 || !location) return response
      await response.body?.cancel()
      const next = new URL(location, current)
      if (next.origin !== new URL(current).origin) {
        throw new DiscoveryRedirectError(
          `redirected to another origin (${next.origin}); refused: set BFF_ISSUER to the real issuer`,
          response.status
        )
      }
      if (hops >= MAX_DISCOVERY_REDIRECTS) {
        throw new DiscoveryRedirectError(
          `more than ${MAX_DISCOVERY_REDIRECTS} redirects`,
          response.status
        )
      }
      onRedirect(current, next.href)
      current = next.href
    }
  }
}

class DiscoveryRedirectError extends Error {
  readonly code = 'discovery_redirect_refused'
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message)
    this.name = 'DiscoveryRedirectError'
  }
}

/** What went wrong with discovery, for the operator: the HTTP status when there was one. */
function discoveryProblem(err: unknown): { status?: number; message: string } {
  let cause: unknown = err
  // openid-client wraps what it did not raise itself ("something went wrong"); look inside.
  while (cause instanceof client.ClientError && !cause.code && cause.cause) cause = cause.cause
  if (cause instanceof DiscoveryRedirectError) {
    return { status: cause.status, message: cause.message }
  }
  const status = httpStatusOf(cause)
  const code = (cause as { code?: unknown } | null)?.code
  if (cause instanceof TypeError) {
    const reason = (cause.cause as { code?: unknown } | undefined)?.code ?? cause.message
    return { message: `could not connect (${String(reason)})` }
  }
  if (
    code === 'OAUTH_TIMEOUT' ||
    (cause instanceof DOMException && cause.name === 'TimeoutError')
  ) {
    return { message: 'no answer in time (BFF_IDP_TIMEOUT)' }
  }
  if (code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') {
    return { status, message: `answered HTTP ${status}, expected 200: is BFF_ISSUER right?` }
  }
  if (code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_PARSE_ERROR') {
    const response = (cause as { cause?: unknown }).cause
    const type = isResponse(response) ? (response.headers.get('content-type') ?? 'none') : undefined
    return {
      status,
      message: `not a JSON discovery document${type ? ` (content-type ${type})` : ''}`,
    }
  }
  if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') {
    // Usually a trailing slash, or the IdP's public URL differing from the one configured.
    const body = (cause as { cause?: { body?: { issuer?: unknown } } }).cause?.body
    return {
      status,
      message: `the document names issuer ${JSON.stringify(body?.issuer)}, not BFF_ISSUER`,
    }
  }
  const detail = cause instanceof Error ? cause.message : String(cause)
  return { status, message: `${errorReason(cause)}: ${detail}` }
}

/** The HTTP status of the IdP answer behind an openid-client error, when there was one. */
function httpStatusOf(err: unknown): number | undefined {
  if (
    err instanceof client.ResponseBodyError ||
    err instanceof client.WWWAuthenticateChallengeError
  ) {
    return err.status
  }
  const cause = (err as { cause?: unknown } | null)?.cause
  return isResponse(cause) ? cause.status : undefined
}

// Duck-typed: a Response from another realm (a test runner's, a runtime's polyfill) is one too.
function isResponse(value: unknown): value is Response {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Response).status === 'number' &&
    typeof (value as Response).headers?.get === 'function'
  )
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

type Phase = 'discovery' | 'callback' | 'refresh' | 'revocation'

/**
 * The fetch openid-client uses (discovery passes it on to every later call), with one change: a
 * connection that fails rejects with a TypeError, as Node's fetch does. workerd rejects with a
 * plain Error ("Network connection lost."), which openid-client wraps as an unknown failure, so a
 * lost connection during a refresh answered 502 `idp_error` instead of 503 `idp_unavailable`,
 * retried and keeping the session. Timeouts and aborts (DOMException) stay as they are.
 */
function idpFetch(fetchImpl?: typeof fetch): client.CustomFetch {
  return async (url, init) => {
    try {
      return await (fetchImpl
        ? fetchImpl(url, init as RequestInit)
        : fetch(url, init as RequestInit))
    } catch (err) {
      if (err instanceof TypeError || err instanceof DOMException) throw err
      throw new TypeError('The identity provider could not be reached.', { cause: err })
    }
  }
}

/** 4xx answers that may well succeed when asked again: timeout, too early, too many requests. */
const TRANSIENT_4XX = new Set([408, 425, 429])

/** Maps any openid-client or network failure to a `BffError` whose message is safe to show. */
function toBffError(err: unknown, phase: Phase): BffError {
  if (err instanceof BffError) return err
  const cause = err
  const status = httpStatusOf(err)
  // The IdP refused this refresh token, whatever shape the refusal has (`invalid_grant`, or
  // Glewlwyd's 400 with an empty body, a 401 page...): asking again cannot help, the session ends.
  if (
    phase === 'refresh' &&
    status &&
    status >= 400 &&
    status < 500 &&
    !TRANSIENT_4XX.has(status)
  ) {
    return new BffError(401, 'session_expired', 'The session has ended; log in again.', { cause })
  }
  if (status && (TRANSIENT_4XX.has(status) || status >= 500)) {
    return new BffError(503, 'idp_unavailable', 'The identity provider is unavailable.', { cause })
  }
  if (err instanceof client.ResponseBodyError) {
    if (err.status === 429 || err.status >= 500) {
      return new BffError(503, 'idp_unavailable', 'The identity provider is unavailable.', {
        cause,
      })
    }
    if (phase === 'callback') {
      return new BffError(400, 'invalid_callback', 'The login could not be completed.', { cause })
    }
    return new BffError(502, 'idp_error', 'The identity provider refused the request.', { cause })
  }
  const code = (err as { code?: string } | null)?.code
  if (code === 'OAUTH_TIMEOUT' || (err instanceof DOMException && err.name === 'TimeoutError')) {
    return new BffError(504, 'idp_timeout', 'The identity provider did not answer in time.', {
      cause,
    })
  }
  // fetch() rejects with a TypeError when the connection fails; so does a non-conforming status.
  if (err instanceof TypeError || code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') {
    return new BffError(503, 'idp_unavailable', 'The identity provider is unavailable.', { cause })
  }
  if (phase === 'callback') {
    return new BffError(400, 'invalid_callback', 'The login response failed validation.', { cause })
  }
  if (phase === 'discovery') {
    return new BffError(503, 'idp_unavailable', 'The identity provider is unavailable.', { cause })
  }
  return new BffError(502, 'idp_error', 'The identity provider sent an invalid response.', {
    cause,
  })
}
