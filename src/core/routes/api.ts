/**
 * `ANY <prefix>*` for each route, its policy checked in DESIGN's order before anything reaches the
 * upstream: CSRF, the route's methods, the token mode (session, fresh token), then the user's
 * access (IdPs, claims, scopes, step-up, an external policy point), then the upstream call with the
 * route's token. Requests outside every prefix fall through to whatever the host app mounts next.
 * A WebSocket upgrade takes the same steps, with `Origin` for CSRF (it cannot carry `X-CSRF`) and
 * only on a route with `websocket: true`, and ends in the runtime's upgrader (proxy/websocket.ts).
 */
import type { MiddlewareHandler } from 'hono'
import { BffError } from '../errors.ts'
import { matchRoute, publicLocation, requestPath, upstreamUrl } from '../proxy/forward.ts'
import { checkAccess, checkMethod, recordDenial } from '../policy/access.ts'
import { guardCsrf, guardOrigin } from '../policy/csrf.ts'
import type { StepUp } from '../policy/step-up.ts'
import { stepUpRequired } from '../proxy/step-up-challenge.ts'
import { upstreamNonces } from '../proxy/dpop-challenge.ts'
import { isWebSocketUpgrade, openWebSocket } from '../proxy/websocket.ts'
import { endingWithSession, isEventStream } from '../proxy/live-stream.ts'
import type { BffEnv } from '../hono-env.ts'
import { upstreamTrace } from '../observe/spans.ts'
import { dpopKey, upstreamProof } from '../oidc/dpop.ts'
import { replayableRequest } from '../proxy/replay-body.ts'
import type { BffServices } from '../services.ts'
import { routeToken } from '../tokens/route-token.ts'

/** The refusals of a route's policy point (`authorize`): a denial, or no decision to be had. */
const POLICY_REFUSALS = new Set(['forbidden', 'policy_unavailable'])

export function apiProxy(s: BffServices): MiddlewareHandler<BffEnv> {
  const { api, baseUrl, upstreamTimeoutMs } = s.config
  const origin = new URL(baseUrl).origin
  const nonces = upstreamNonces()

  return async function apiProxy(c, next) {
    const url = requestPath(c.req.url)
    const route = matchRoute(api, url.pathname)
    if (!route) return next()
    c.set('proxied', true)
    const upgrade = isWebSocketUpgrade(c.req.raw)
    if (!upgrade) await guardCsrf(c, s.audit, route.prefix)
    else {
      await guardOrigin(c, s.audit, origin, route.prefix)
      if (!route.websocket) {
        await recordDenial(s, c, route, 'websocket_not_allowed', 'websocket')
        throw new BffError(403, 'websocket_not_allowed', 'This route does not take WebSockets.')
      }
    }
    const wrongMethod = await checkMethod(s, c, route)
    if (wrongMethod) return wrongMethod
    const target = upstreamUrl(route, url)

    // Token mode (the session the route needs, its token fresh), then access: IdPs, claims,
    // scopes, step-up (policy/access.ts). Then the policy point (policy/authorize.ts).
    const access = await checkAccess(s, c, route)
    if (access instanceof Response) return access
    const session = access.session ?? undefined
    await s.policy.authorize(route, c.req.method, url.pathname, session).catch(async (err) => {
      // The policy point logs and counts its refusals; the trail gets them with the client's IP.
      if (err instanceof BffError && POLICY_REFUSALS.has(err.code)) {
        await s.audit(c, 'policy_denied', { session, reason: err.code, check: 'authorize' })
      }
      throw err
    })
    // Token: per route (tokens/route-token.ts): the user's, a resource's, the client's, exchanged.
    const routeAccess = await routeToken(s, c, route, access.session)
    const accessToken = routeAccess?.accessToken
    if (upgrade) {
      return openWebSocket(s, c, {
        route,
        target,
        session: access.session,
        token: routeAccess,
        nonces,
      })
    }

    const challenged: { stepUp?: StepUp; nonce?: string } = {}
    // The upstream's traceparent: a child of the request's, never the browser's own.
    const trace = upstreamTrace(s.tracer, c, route, target)
    const started = s.metrics.enabled ? performance.now() : 0
    // DPoP: a token the IdP bound to a key (the session's, or the BFF's own for `client` routes)
    // goes with a proof of that key; others as bearer.
    const key =
      routeAccess?.tokenType === 'DPoP' && routeAccess.dpopKey
        ? await dpopKey(routeAccess.dpopKey)
        : undefined
    // A request that can go twice (no body, or a small one read here first) answers an upstream's
    // nonce challenge at once; a streamed body cannot (proxy/replay-body.ts).
    const replay = key ? await replayableRequest(c, s.forward) : undefined
    const send = async () =>
      s.forward(c, target, {
        // None (token `none`, or `optional` without a session): no Authorization at all.
        accessToken,
        ...(key && accessToken !== undefined
          ? {
              dpop: await upstreamProof(key, c.req.method, target, accessToken, nonces.get(target)),
              // Every answer's nonce is the one for the next proof to this upstream (RFC 9449 9).
              onDpopNonce: (nonce: string, challenge: boolean) => {
                nonces.set(target, nonce)
                if (challenge) challenged.nonce = nonce
              },
              ...(replay?.body ? { body: replay.body } : {}),
            }
          : {}),
        baseUrl,
        clientIp: s.clientIp(c),
        timeoutMs: upstreamTimeoutMs,
        onStepUp: (stepUp) => (challenged.stepUp = stepUp),
        route,
        trace: trace.headers,
      })
    let upstream = await send().catch((err) => {
      trace.end(err)
      throw err
    })
    // Once, and only for a request that can be sent again: a body already streamed out cannot.
    // Others get the 401; the nonce is remembered, so their next call carries it.
    if (challenged.nonce && replay) {
      challenged.nonce = undefined
      await upstream.body?.cancel()
      upstream = await send().catch((err) => {
        trace.end(err)
        throw err
      })
    }
    trace.end(upstream.status)
    if (started) s.metrics.upstream(route.prefix, (performance.now() - started) / 1000)
    if (challenged.stepUp) return stepUpRequired(s, c, upstream, challenged.stepUp, route)
    if (upstream.status >= 300 && upstream.status < 400) {
      const location = upstream.headers.get('location')
      if (location) upstream.headers.set('location', publicLocation(location, route, target))
    }
    // An event stream ends with its session (proxy/live-stream.ts).
    if (access.session && isEventStream(upstream)) {
      return endingWithSession(s, c, upstream, access.session)
    }
    // The session cookie, if any, is added by SessionManager.commit once the response is complete.
    return upstream
  }
}
