/**
 * Discovery of the IdP's metadata: fetched once and kept for the life of the process; a failure is
 * not kept, logged once per distinct problem with the URL, the status and what was wrong, retried
 * in the background from start-up, and reported by `/bff/health`.
 */
import * as client from 'openid-client'
import type { Config } from '../config/options.ts'
import { errorReason } from '../observe/log.ts'
import type { IdpStatus, OidcDeps } from './types.ts'
import { clientAuthOf, ClientKeyError } from './client-auth.ts'
import { httpStatusOf, idpFetch, isResponse, toBffError } from './errors.ts'
import { checkProfileSupport, ProfileUnsupportedError } from './fapi2.ts'
import { traceFetch } from './trace-params.ts'

/** Same-origin redirects followed for the discovery document (django-oauth-toolkit adds a slash). */
const MAX_DISCOVERY_REDIRECTS = 3
/** Background discovery retries: the first delay, doubled each time up to the last. */
const DISCOVERY_RETRY_MS = { first: 1000, max: 60_000 }
/** How long `idpStatus` answers a failed attempt before trying again. */
const STATUS_RECHECK_MS = 5000

export interface Discovery {
  /** The IdP's configuration for openid-client; rejects with a `BffError` while it cannot be had. */
  configuration(): Promise<client.Configuration>
  idpStatus(): Promise<IdpStatus>
  /** Discovers now, then retries in the background with a growing delay until it works. */
  checkAtStartup(signal: AbortSignal): void
}

/**
 * `onDiscovered` runs once the document is had (at start-up on Node, at first use on Workers),
 * e.g. to check the grants the routes need against it.
 */
export function createDiscovery(
  config: Config,
  deps: OidcDeps,
  redirectUri: string,
  onDiscovered?: (configuration: client.Configuration) => void
): Discovery {
  const now = deps.now ?? Date.now
  const log = deps.log ?? (() => {})
  let discovered: Promise<client.Configuration> | undefined
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
        onDiscovered?.(result)
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
      await clientAuthOf(config),
      options
    )
    // An IdP that cannot serve the profile fails here, as unavailable, saying what it lacks: the
    // BFF never goes on with less than the profile asks (a bearer token, a login without PAR).
    checkProfileSupport(config, result.serverMetadata())
    // Only the discovery document may redirect; every later call uses the plain fetch, which
    // sends a request's trace context as headers (trace-params.ts). Discovery carries none: its
    // document serves every request, none's own work.
    result[client.customFetch] = traceFetch(idpFetch(deps.fetch))
    result.timeout = config.idpTimeoutSeconds
    // openid-client trusts TLS for ID tokens from the token endpoint and checks no signature unless
    // told to. Checked, an ID token signed with `none`, an unknown key or an ambiguous kid is refused.
    client.enableNonRepudiationChecks(result)
    return result
  }

  // Once discovered, the document is kept: whether the IdP is still there is asked again, by
  // reading the document, at most every STATUS_RECHECK_MS (health checks come often).
  let probe: { at: number; status: Promise<IdpStatus> } | undefined

  async function idpStatus(): Promise<IdpStatus> {
    if (last && !last.ok && now() - last.at < STATUS_RECHECK_MS && !discovered) {
      return { idp: 'unreachable', message: last.message }
    }
    try {
      await configuration()
    } catch {
      return { idp: 'unreachable', message: last && !last.ok ? last.message : 'unknown' }
    }
    if (!probe || now() - probe.at >= STATUS_RECHECK_MS) {
      probe = { at: now(), status: stillThere() }
    }
    return probe.status
  }

  /** The IdP answers its discovery document with 200 (redirects followed, as any client would). */
  async function stillThere(): Promise<IdpStatus> {
    try {
      const response = await (deps.fetch ?? fetch)(discoveryUrl, {
        signal: AbortSignal.timeout(config.idpTimeoutSeconds * 1000),
      })
      await response.body?.cancel().catch(() => {})
      if (response.ok) return { idp: 'ok' }
      return { idp: 'unreachable', message: `${discoveryUrl} answered HTTP ${response.status}` }
    } catch (err) {
      return { idp: 'unreachable', message: `${discoveryUrl}: ${discoveryProblem(err).message}` }
    }
  }

  function checkAtStartup(signal: AbortSignal): void {
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
  }

  return { configuration, idpStatus, checkAtStartup }
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
  if (cause instanceof ClientKeyError || cause instanceof ProfileUnsupportedError) {
    return { message: cause.message }
  }
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
