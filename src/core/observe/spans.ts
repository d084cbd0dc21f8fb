/**
 * Where the BFF's spans begin and end: the request (a server span), the session load, the
 * upstream call (a client span, whose id the upstream's `traceparent` names). Without a `Tracer`
 * none of this runs but `traceOf` and `upstreamTrace`: a `traceparent` parsed, a child's ids drawn.
 *
 * Attributes carry methods, configured route prefixes, `/bff/<endpoint>` names, statuses, error
 * codes, the IdP's configured name and the store kind: never a path as requested, a query, a
 * header value, a token, a cookie or a user id.
 */
import type { Context, MiddlewareHandler } from 'hono'
import type { ApiRoute } from '../config/options.ts'
import type { BffEnv } from '../hono-env.ts'
import { matchRoute, requestPath } from '../proxy/forward.ts'
import type { SessionManager } from '../session/manager.ts'
import {
  childContext,
  errorType,
  parseTraceparent,
  traceHeaders,
  type Span,
  type TraceContext,
  type Tracer,
} from './trace.ts'

/**
 * The context this request's own calls are children of: the request span's when one is recorded,
 * else the incoming parent, else a new trace's root. Read once per request.
 */
export function traceOf(c: Context<BffEnv>): TraceContext {
  let context = c.get('trace')
  if (!context) {
    context =
      parseTraceparent(c.req.header('traceparent'), c.req.header('tracestate')) ??
      childContext(undefined)
    c.set('trace', context)
  }
  return context
}

/**
 * The request's server span, around everything the app does for it. Named by method and route
 * (`GET /api/`, `POST /bff/logout`) once the answer is known; an address nothing serves gets the
 * method alone.
 */
export function traceRequests(tracer: Tracer, api: readonly ApiRoute[]): MiddlewareHandler<BffEnv> {
  return async function traceRequests(c, next) {
    const method = c.req.method
    const incoming = parseTraceparent(c.req.header('traceparent'), c.req.header('tracestate'))
    const span = tracer.startSpan(method, {
      kind: 'server',
      ...(incoming ? { parent: incoming } : {}),
      attributes: { 'http.request.method': method },
    })
    // The request span's children keep the incoming tracestate, which the tracer may not carry.
    c.set('trace', incoming?.state ? { ...span.context, state: incoming.state } : span.context)
    try {
      await next()
    } finally {
      // Hono has turned any error into an answer by now; a response is always there.
      const status = c.res?.status ?? 500
      const route = routeName(c, api, status)
      if (route) {
        span.updateName(`${method} ${route}`)
        span.setAttributes({ 'http.route': route })
      }
      span.setAttributes({ 'http.response.status_code': status })
      span.end(status >= 500 ? String(status) : undefined)
    }
  }
}

/** The route of a request as a bounded name: a configured prefix or `/bff/<endpoint>`. */
function routeName(c: Context<BffEnv>, api: readonly ApiRoute[], status: number) {
  const { pathname } = requestPath(c.req.url)
  if (c.get('proxied')) return matchRoute(api, pathname)?.prefix
  if (status === 404) return undefined
  return /^\/bff\/[a-z-]{1,32}(?=\/|$)/.exec(pathname)?.[0]
}

/** A session manager whose first load of each request is a span. */
export function traceSessions(
  sessions: SessionManager,
  tracer: Tracer,
  storeKind: string
): SessionManager {
  return {
    ...sessions,
    store: sessions.store,
    async load(c) {
      // Memoised per request: only the first load reads the cookie and the store.
      if (c.get('session') !== undefined) return sessions.load(c)
      const span = tracer.startSpan('bff.session.load', {
        kind: 'internal',
        parent: traceOf(c),
        attributes: { 'bff.session.store': storeKind },
      })
      try {
        const session = await sessions.load(c)
        span.setAttributes({ 'bff.session.found': session !== null })
        span.end()
        return session
      } catch (err) {
        span.end(errorType(err))
        throw err
      }
    },
  }
}

/** An upstream call: the headers it carries and, with a tracer, its client span. */
export interface UpstreamTrace {
  headers: { traceparent: string; tracestate?: string }
  /** Ends the span (if any) with the upstream's status or the error the call failed with. */
  end(outcome: number | unknown): void
}

/**
 * The upstream call of a proxied request. Its `traceparent` is always the BFF's own (a child of
 * the request's context), never the browser's: the proxy strips the browser's header.
 */
export function upstreamTrace(
  tracer: Tracer | undefined,
  c: Context<BffEnv>,
  route: ApiRoute,
  target: URL
): UpstreamTrace {
  const parent = traceOf(c)
  if (!tracer) return { headers: traceHeaders(childContext(parent)), end: () => {} }
  const method = c.req.method
  const span: Span = tracer.startSpan(`${method} ${route.prefix}`, {
    kind: 'client',
    parent,
    attributes: {
      'http.request.method': method,
      'http.route': route.prefix,
      'server.address': target.hostname,
      'server.port': Number(target.port || (target.protocol === 'https:' ? 443 : 80)),
    },
  })
  return {
    headers: traceHeaders(parent.state ? { ...span.context, state: parent.state } : span.context),
    end(outcome) {
      if (typeof outcome === 'number') {
        span.setAttributes({ 'http.response.status_code': outcome })
        span.end(outcome >= 500 ? String(outcome) : undefined)
      } else {
        span.end(errorType(outcome))
      }
    },
  }
}
