/**
 * `GET /bff/metrics`, off unless `BFF_METRICS_TOKEN` is set: the Prometheus text of
 * observe/bff-metrics.ts, for a scraper with `Authorization: Bearer <token>` (compared in constant
 * time). Without the setting the address does not exist (404 `not_found`), like the admin API.
 * Also the middleware that times and counts every request while metrics are on.
 */
import { Hono, type MiddlewareHandler } from 'hono'
import { BffError } from '../errors.ts'
import type { BffMetrics } from '../observe/bff-metrics.ts'
import { PROMETHEUS_CONTENT_TYPE } from '../observe/metrics.ts'
import { constantTimeEqual } from '../policy/constant-time.ts'
import type { BffServices } from '../services.ts'

export function metricsRoute(s: BffServices) {
  const app = new Hono()
  const token = s.config.metricsToken
  if (!token) return app

  app.get('/bff/metrics', async (c) => {
    c.header('Cache-Control', 'no-store')
    // Auth schemes are case-insensitive (RFC 9110 11.1): "bearer" is "Bearer".
    const given = /^Bearer +(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1] ?? ''
    if (!(await constantTimeEqual(given, token))) {
      c.header('WWW-Authenticate', 'Bearer realm="bff-metrics"')
      s.log('warn', 'metrics.unauthorized', {})
      throw new BffError(401, 'unauthenticated', 'A valid metrics bearer token is required.')
    }
    return c.body(await s.metrics.render(), 200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE })
  })
  return app
}

/**
 * Times each request to its answer's headers (a streamed body goes on after) and counts it by
 * route, method and status. Installed only while metrics (or a runtime's request hook) are on.
 */
export function timeRequests(metrics: BffMetrics): MiddlewareHandler {
  return async function timeRequests(c, next) {
    const started = performance.now()
    // An error that escapes to a host app's handler has no answer here yet: counted as a 500.
    let status = 500
    try {
      await next()
      status = c.res.status
    } finally {
      metrics.request(c.req.path, c.req.method, status, (performance.now() - started) / 1000)
    }
  }
}
