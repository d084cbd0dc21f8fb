/**
 * `ANY <prefix>*` for each route, its policy checked in DESIGN's order before anything reaches the
 * upstream: CSRF, the route's methods, the token mode (session, fresh token), then the user's
 * access (IdPs, claims, scopes, step-up, an external policy point), then the upstream call with the
 * route's token. Requests outside every prefix fall through to whatever the host app mounts next.
 */
import type { MiddlewareHandler } from 'hono'
import { BffError } from '../errors.ts'
import {
  allowedMethods,
  matchRoute,
  publicLocation,
  requestPath,
  upstreamUrl,
} from '../proxy/forward.ts'
import { stepUpRequired } from '../proxy/step-up-challenge.ts'
import { checkCsrf } from '../policy/csrf.ts'
import type { StepUp } from '../policy/step-up-params.ts'
import type { BffEnv } from '../hono-env.ts'
import type { BffServices } from '../services.ts'
import { freshSession } from './fresh-session.ts'

export function apiProxy(s: BffServices): MiddlewareHandler<BffEnv> {
  const { api, baseUrl, upstreamTimeoutMs } = s.config

  return async function apiProxy(c, next) {
    const url = requestPath(c.req.url)
    const route = matchRoute(api, url.pathname)
    if (!route) return next()
    c.set('proxied', true)
    checkCsrf(c)
    const methods = allowedMethods(route)
    if (!methods.has(c.req.method)) {
      // Answered here rather than thrown: the error renderer sends no headers of the route's.
      return c.json(
        { error: 'method_not_allowed', message: 'This method is not allowed here.' },
        405,
        { Allow: [...methods].join(', '), 'Cache-Control': 'no-store' }
      )
    }
    const target = upstreamUrl(route, url)

    // Token mode `user` (the default): a session is required, its access token kept fresh.
    const session = await s.sessions.load(c)
    if (!session) throw new BffError(401, 'unauthenticated', 'Not logged in.')
    const result = await freshSession(s, c, session)
    if (result.kind === 'error') throw result.error
    // Access: IdPs, claims, scopes, step-up (policy/access.ts), then the policy point.
    // Token: per route (tokens/route-token.ts): the user's, a resource's, the client's, exchanged.

    const challenged: { stepUp?: StepUp } = {}
    const upstream = await s.forward(c, target, {
      accessToken: result.session.accessToken,
      baseUrl,
      clientIp: s.clientIp(c),
      timeoutMs: upstreamTimeoutMs,
      onStepUp: (stepUp) => (challenged.stepUp = stepUp),
    })
    if (challenged.stepUp) return stepUpRequired(s, c, upstream, challenged.stepUp, route, url)
    if (upstream.status >= 300 && upstream.status < 400) {
      const location = upstream.headers.get('location')
      if (location) upstream.headers.set('location', publicLocation(location, route, target))
    }
    // The session cookie, if any, is added by SessionManager.commit once the response is complete.
    return upstream
  }
}
