/**
 * openid-client and network failures as `BffError`s: the one mapping from what the IdP (or the
 * way to it) did to what the BFF answers.
 */
import * as client from 'openid-client'
import { BffError } from '../errors.ts'

/** The HTTP status of the IdP answer behind an openid-client error, when there was one. */
export function httpStatusOf(err: unknown): number | undefined {
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
export function isResponse(value: unknown): value is Response {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Response).status === 'number' &&
    typeof (value as Response).headers?.get === 'function'
  )
}

/**
 * What the BFF asked the IdP for: `resource` is a refresh-token grant for one resource (RFC
 * 8707), `exchange` a token exchange (RFC 8693), `client` a client-credentials grant.
 */
export type Phase =
  'discovery' | 'par' | 'callback' | 'refresh' | 'revocation' | 'resource' | 'exchange' | 'client'

/** Grants of a route's own token: a refusal fails that route's call and nothing else. */
const ROUTE_TOKEN_PHASES = new Set<Phase>(['resource', 'exchange', 'client'])

/**
 * The fetch openid-client uses (discovery passes it on to every later call), with one change: a
 * connection that fails rejects with a TypeError, as Node's fetch does. workerd rejects with a
 * plain Error ("Network connection lost."), which openid-client wraps as an unknown failure, so a
 * lost connection during a refresh answered 502 `idp_error` instead of 503 `idp_unavailable`,
 * retried and keeping the session. Timeouts and aborts (DOMException) stay as they are.
 */
export function idpFetch(fetchImpl?: typeof fetch): client.CustomFetch {
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
export function toBffError(err: unknown, phase: Phase): BffError {
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
    // An OAuth error names itself in the log (`ResponseBodyError:invalid_grant`); any other refusal
    // is named by its status, not by what openid-client thought of its body (not JSON, say).
    const named =
      err instanceof client.ResponseBodyError
        ? cause
        : Object.assign(new Error(`refresh refused with HTTP ${status}`), {
            code: `refused_http_${status}`,
            cause,
          })
    return new BffError(401, 'session_expired', 'The session has ended; log in again.', {
      cause: named,
    })
  }
  if (
    ROUTE_TOKEN_PHASES.has(phase) &&
    status &&
    status >= 400 &&
    status < 500 &&
    !TRANSIENT_4XX.has(status)
  ) {
    // The refresh token itself refused: the session is over, as when a refresh is refused.
    if (phase === 'resource' && err instanceof client.ResponseBodyError) {
      if (err.error === 'invalid_grant') {
        return new BffError(401, 'session_expired', 'The session has ended; log in again.', {
          cause,
        })
      }
    }
    // Anything else (an unknown resource, a scope or grant the client may not use) is the IdP's
    // answer for this route: asking again will not change it, and the session stays as it is.
    return new BffError(
      502,
      'token_unavailable',
      "The identity provider refused a token for this route's upstream.",
      { cause }
    )
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
