/**
 * `ANY <prefix>*` for each `BFF_API` route: CSRF check, the route's methods, session, a fresh
 * access token, then the upstream call. Requests outside every prefix fall through to whatever
 * the host app mounts next.
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
import { checkCsrf } from '../policy/csrf.ts'
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

    const session = await s.sessions.load(c)
    if (!session) throw new BffError(401, 'unauthenticated', 'Not logged in.')
    const result = await freshSession(s, c, session)
    if (result.kind === 'error') throw result.error

    const upstream = await s.forward(c, target, {
      accessToken: result.session.accessToken,
      baseUrl,
      clientIp: s.clientIp(c),
      timeoutMs: upstreamTimeoutMs,
    })
    if (upstream.status >= 300 && upstream.status < 400) {
      const location = upstream.headers.get('location')
      if (location) upstream.headers.set('location', publicLocation(location, route, target))
    }
    // The session cookie, if any, is added by SessionManager.commit once the response is complete.
    return upstream
  }
}
