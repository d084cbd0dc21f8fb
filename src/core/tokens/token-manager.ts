/**
 * "Give me a fresh access token for this session." Refreshes shortly before expiry (the skew, at
 * most half the token's lifetime) and never logs a user out by accident:
 * - single-flight: concurrent requests of one session share one refresh grant, since with rotating
 *   refresh tokens a second, parallel grant would present a spent token and end the session;
 * - grace window: for a while after a refresh, a request still holding the older generation (a
 *   parallel tab, a slow request, an older cookie) gets the new tokens instead of spending the old
 *   refresh token again;
 * - failure policy: only a refusal of the refresh token (a non-transient 4xx from the token
 *   endpoint, `invalid_grant` or otherwise) ends the session; transient failures are retried with
 *   bounded backoff, then the still-valid access token is used, else 503 `idp_unavailable` with
 *   the session kept for the next call.
 * The same holds for the session's RFC 8707 tokens (`freshResource`): a grant for a resource
 * spends the refresh token too, so all of a session's token changes share one flight, one
 * generation counter and one coordinator; a caller that joined a change made for another of the
 * session's tokens goes again from the newer generation.
 */
import { BffError } from '../errors.ts'
import { sessionDpopKey } from '../oidc/dpop.ts'
import { oidcOfSession, type SessionOidc } from '../oidc/idps.ts'
import { userClaims } from '../oidc/id-token.ts'
import { errorType, type TraceContext, type Tracer } from '../observe/trace.ts'
import type { Session } from '../session/types.ts'
import { singleFlight, type RefreshCoordinator } from './refresh-coordinator.ts'
import { resourceGrant, resourceToken } from './resource-token.ts'

export type TokenResult =
  | { kind: 'fresh'; session: Session }
  | { kind: 'refreshed'; session: Session }
  | { kind: 'error'; error: BffError }

export interface TokenManager {
  /**
   * A session whose access token is valid for at least the skew, refreshing it if needed. With
   * `trace` (the request's context) and a tracer, a refresh this call makes is a span of it; with
   * `trace`, the IdP's grant requests are children of that span (of `trace` without a tracer).
   */
  freshSession(session: Session, trace?: TraceContext): Promise<TokenResult>
  /**
   * A session holding a token for `resource` (RFC 8707) valid for at least the skew, got with a
   * refresh-token grant when due. The session's own access token is left as it is.
   */
  freshResource(session: Session, resource: string, trace?: TraceContext): Promise<TokenResult>
  /** The newest generation of this session this instance knows of (within the grace window). */
  newest(session: Session): Session
}

export interface TokenManagerOptions {
  /** The IdP client refreshes go to: one, or each session's own (`IdpRegistry.oidcFor`). */
  oidc: SessionOidc
  /**
   * Makes a refresh happen once across every instance sharing the sessions (a Redis lock, a
   * Durable Object). Without it, refreshes are single-flight within this process only.
   */
  coordinator?: RefreshCoordinator
  skewSeconds: number
  /** Epoch milliseconds. */
  now?: () => number
  /** How long a refresh result is handed to requests still holding the older generation. */
  graceSeconds?: number
  /** Delays before each retry of a transiently failed refresh, in milliseconds. */
  retryDelaysMs?: readonly number[]
  /** After a refresh failed transiently, how long a still-valid token is used without retrying. */
  failureBackoffSeconds?: number
  /** Told of each refresh this instance asked for and how it ended (`bff_token_refreshes_total`). */
  onRefresh?: (session: Session, result: 'success' | 'expired' | 'error') => void
  /** Records each refresh (the grant with its retries and coordination) as a span. */
  tracer?: Tracer
}

/**
 * Seconds before expiry at which a token is refreshed: the configured skew, but never more than half
 * the token's lifetime. With a skew as long as the token's life (30 s against 4 s tokens), every
 * call would be due and spend a refresh grant; with half, a token serves at least half its life.
 */
export function refreshSkewFor(session: Session, skewSeconds: number): number {
  return skewFor(session.accessTokenLifetime, skewSeconds)
}

/** `refreshSkewFor` of any token: the skew, at most half of `lifetime` when it is known. */
export function skewFor(lifetime: number | undefined, skewSeconds: number): number {
  return lifetime !== undefined && lifetime > 0 ? Math.min(skewSeconds, lifetime / 2) : skewSeconds
}

/** The token a refresh brings up to date: the session's own (no resource), or a resource's. */
function tokenOf(
  session: Session,
  resource: string | undefined
): { expiresAt: number; lifetime?: number } | undefined {
  if (resource !== undefined) return resourceToken(session, resource)
  return { expiresAt: session.accessTokenExpiresAt, lifetime: session.accessTokenLifetime }
}

/** Rounds a caller goes after joining changes made for the session's other tokens. */
const MAX_ROUNDS = 3

/** A session's newest refreshed generation, handed to older callers until `until` (epoch ms). */
interface RecentRefresh {
  session: Session
  until: number
}

/** IdP failures worth retrying: the IdP may answer the same request a moment later. */
const TRANSIENT = new Set(['idp_unavailable', 'idp_timeout'])

export function createTokenManager(options: TokenManagerOptions): TokenManager {
  const { skewSeconds } = options
  const oidcFor = oidcOfSession(options.oidc)
  const now = options.now ?? Date.now
  const graceMs = (options.graceSeconds ?? 30) * 1000
  const retryDelaysMs = options.retryDelaysMs ?? [100, 400]
  const backoffMs = (options.failureBackoffSeconds ?? 5) * 1000
  // Concurrent callers of this process holding one generation join one refresh; only that one
  // asks the shared coordinator, if any.
  const local = singleFlight()
  // Session id -> its newest refreshed generation. Insertion order is expiry order (one TTL), so
  // expired entries are always at the front and are dropped as new ones arrive.
  const recent = new Map<string, RecentRefresh>()
  // Session id -> until when a still-valid token is used without retrying, after a failure.
  const failing = new Map<string, { until: number }>()

  function prune(map: Map<string, { until: number }>, t: number) {
    for (const [key, entry] of map) {
      if (entry.until > t) break
      map.delete(key)
    }
  }

  function remember(session: Session) {
    const t = now()
    prune(recent, t)
    recent.delete(session.id)
    recent.set(session.id, { session, until: t + graceMs })
  }

  function newest(session: Session): Session {
    const known = recent.get(session.id)
    return known && known.until > now() && known.session.generation > session.generation
      ? known.session
      : session
  }

  /** One refresh grant at the IdP, a child of `trace`; the caller ensures it is the only one. */
  async function grant(session: Session, trace: TraceContext | undefined): Promise<Session> {
    // The same key as at login, always: a new one would unbind the session from its tokens.
    const tokens = await oidcFor(session).refresh(
      session.refreshToken!,
      session.sub,
      await sessionDpopKey(session),
      trace
    )
    return {
      ...session,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      idToken: tokens.idToken ?? session.idToken,
      accessTokenExpiresAt: tokens.accessTokenExpiresAt,
      accessTokenLifetime: tokens.accessTokenLifetime,
      // A refresh may narrow the scope (RFC 6749 6); without `scope`, it is unchanged.
      scope: tokens.scope ?? session.scope,
      tokenType: tokens.tokenType,
      claims: tokens.claims ? { ...session.claims, ...userClaims(tokens.claims) } : session.claims,
      generation: session.generation + 1,
    }
  }

  /** `change`, retried on transient failures. */
  async function withRetries(change: () => Promise<Session>): Promise<Session> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await change()
      } catch (err) {
        const delay = retryDelaysMs[attempt]
        if (delay === undefined || !(err instanceof BffError) || !TRANSIENT.has(err.code)) throw err
        await new Promise((resolve) => setTimeout(resolve, delay))
      }
    }
  }

  /** `refresh`, as a span of the request that set it off (joined callers make none). */
  async function tracedRefresh(
    session: Session,
    resource: string | undefined,
    trace: TraceContext | undefined
  ): Promise<Session> {
    if (!trace || !options.tracer) return refresh(session, resource, trace)
    const span = options.tracer.startSpan('bff.token.refresh', {
      kind: 'internal',
      parent: trace,
      attributes: {
        'bff.idp': session.idp ?? 'default',
        'bff.token.kind': resource === undefined ? 'session' : 'resource',
        'bff.refresh.coordinated': options.coordinator !== undefined,
      },
    })
    // The grant at the IdP hangs below this span, in the trace's tracestate (which the tracer
    // may not carry), as upstream calls hang below the request's.
    const context = trace.state ? { ...span.context, state: trace.state } : span.context
    try {
      const refreshed = await refresh(session, resource, context)
      span.end()
      return refreshed
    } catch (err) {
      span.end(errorType(err))
      throw err
    }
  }

  /**
   * The session's next generation with `resource`'s token (or its own) refreshed, once; the
   * grants are children of `trace`.
   */
  async function refresh(
    session: Session,
    resource: string | undefined,
    trace: TraceContext | undefined
  ): Promise<Session> {
    const { coordinator } = options
    const once = (current: Session) =>
      withRetries(() =>
        resource === undefined
          ? grant(current, trace)
          : resourceGrant(oidcFor(current), current, resource, trace)
      )
    const refreshed = await (
      coordinator
        ? coordinator.refreshOnce(session, once, resource, trace).catch((err) => {
            if (err instanceof BffError) throw err
            // The coordination failed (store down, lock wait too long), not the IdP: retry later.
            throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
              cause: err,
            })
          })
        : once(session)
    ).catch((err) => {
      const expired = err instanceof BffError && err.code === 'session_expired'
      options.onRefresh?.(session, expired ? 'expired' : 'error')
      throw err
    })
    options.onRefresh?.(session, 'success')
    remember(refreshed)
    return refreshed
  }

  async function fresh(
    current: Session,
    resource?: string,
    trace?: TraceContext
  ): Promise<TokenResult> {
    let session = newest(current)
    for (let round = 1; ; round++) {
      const t = now()
      const token = tokenOf(session, resource)
      const expiresInSeconds = token ? token.expiresAt - t / 1000 : 0
      const usable = expiresInSeconds > 0
      if (token && expiresInSeconds > skewFor(token.lifetime, skewSeconds)) {
        return session === current ? { kind: 'fresh', session } : { kind: 'refreshed', session }
      }
      if (!session.refreshToken) {
        if (usable) return { kind: 'fresh', session }
        const error =
          resource === undefined
            ? new BffError(401, 'session_expired', 'The access token expired; log in again.')
            : new BffError(
                502,
                'token_unavailable',
                "No refresh token to get a token for this route's resource."
              )
        return { kind: 'error', error }
      }

      // After a transient failure, a session whose token still works keeps using it for a few
      // seconds instead of asking the IdP again on every call; an expired one always tries.
      const failKey = resource === undefined ? session.id : `${session.id} ${resource}`
      prune(failing, t)
      if (usable && failing.has(failKey)) return { kind: 'fresh', session }

      try {
        const next = await local.refreshOnce(session, (s) => tracedRefresh(s, resource, trace))
        // A change of this generation made for another of the session's tokens (joined here, or
        // made by another instance) may leave this one as it was: go again from the newer one.
        const still = tokenOf(next, resource)
        const done = still && still.expiresAt - now() / 1000 > skewFor(still.lifetime, skewSeconds)
        if (!done && round < MAX_ROUNDS && next.generation > session.generation) {
          session = next
          continue
        }
        return { kind: 'refreshed', session: next }
      } catch (err) {
        const error =
          err instanceof BffError
            ? err
            : new BffError(502, 'idp_error', 'Refreshing the access token failed.', { cause: err })
        if (error.code === 'session_expired') return { kind: 'error', error }
        // Anything else leaves the session as it is: pause refreshing it briefly, and keep serving
        // with the current token while it is still valid.
        failing.delete(failKey)
        failing.set(failKey, { until: now() + backoffMs })
        return usable ? { kind: 'fresh', session } : { kind: 'error', error }
      }
    }
  }

  return {
    newest,
    freshSession: (session, trace) => fresh(session, undefined, trace),
    freshResource: (session, resource, trace) => fresh(session, resource, trace),
  }
}
