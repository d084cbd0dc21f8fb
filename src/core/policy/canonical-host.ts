/**
 * Sends a browser that opened the BFF on another loopback name (`127.0.0.1` where `BFF_BASE_URL`
 * says `localhost`, or the reverse, as wrangler prints it) to `BFF_BASE_URL` before anything
 * starts: the login's transaction cookie and the session cookie belong to one host, so a login
 * begun on the other one always ended on the "invalid or already used" page.
 */
import type { MiddlewareHandler } from 'hono'
import { isLoopback } from '../config/values.ts'

/**
 * Redirects (307, same path and query, always to `baseUrl`'s origin) only when all hold:
 * - `baseUrl` is a loopback origin, the request's host is a different loopback name with the same
 *   port: a development setup. Behind a proxy in production the BFF may see an internal host, and
 *   redirecting there would loop, so nothing else is ever redirected;
 * - a GET or HEAD top-level navigation (`Sec-Fetch-Mode: navigate`, or without Fetch Metadata an
 *   `Accept` with `text/html`) without `X-CSRF`: page loads and `/bff/login`, never an API call,
 *   which would lose its body or fail its CORS check.
 */
export const canonicalHost = (baseUrl: string): MiddlewareHandler => {
  const base = new URL(baseUrl)
  const loopbackBase = isLoopback(base.hostname)
  return async function canonicalHost(c, next) {
    if (!loopbackBase || (c.req.method !== 'GET' && c.req.method !== 'HEAD')) return next()
    // The headers first: they rule out every API call without parsing its URL.
    if (c.req.header('x-csrf') !== undefined) return next()
    const mode = c.req.header('sec-fetch-mode')
    const navigation =
      mode === undefined
        ? (c.req.header('accept') ?? '').includes('text/html')
        : mode === 'navigate'
    if (!navigation) return next()
    const url = new URL(c.req.url)
    if (url.host === base.host || url.port !== base.port || !isLoopback(url.hostname)) return next()
    c.header('Cache-Control', 'no-store')
    return c.redirect(`${base.origin}${url.pathname}${url.search}`, 307)
  }
}
