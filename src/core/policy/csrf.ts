import type { Context, MiddlewareHandler } from 'hono'
import { BffError } from '../errors.ts'

/**
 * CSRF guard for the JSON endpoints and the API proxy. `X-CSRF: 1` is a custom header, which a
 * cross-site form or `<img>` cannot send and a cross-origin `fetch` can only send after a CORS
 * preflight the BFF never approves. Fetch Metadata adds a second, independent line: browsers mark
 * cross-site requests with `Sec-Fetch-Site: cross-site`, which is refused even with the header.
 */
export function checkCsrf(c: Context): void {
  if (c.req.header('x-csrf') !== '1') {
    throw new BffError(403, 'csrf', 'This endpoint needs the "X-CSRF: 1" request header.')
  }
  if (isCrossSite(c)) throw new BffError(403, 'csrf', 'Cross-site requests are not allowed.')
}

/** Browsers send the value in lower case; any other spelling is no less cross-site. */
function isCrossSite(c: Context): boolean {
  return c.req.header('sec-fetch-site')?.toLowerCase() === 'cross-site'
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Fetch Metadata for endpoints that need no `X-CSRF` (the back-channel, the admin API): no BFF
 * endpoint takes an unsafe method from another site, so a browser's `Sec-Fetch-Site: cross-site`
 * on one is refused whatever credentials it carries. Servers (the IdP, an admin's script) send no
 * Fetch Metadata and pass.
 */
export function refuseCrossSiteWrite(c: Context): void {
  if (!SAFE_METHODS.has(c.req.method) && isCrossSite(c)) {
    throw new BffError(403, 'csrf', 'Cross-site requests are not allowed.')
  }
}

export const csrfGuard = (): MiddlewareHandler =>
  async function csrfGuard(c, next) {
    checkCsrf(c)
    await next()
  }
