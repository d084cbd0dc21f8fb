import type { Context, MiddlewareHandler } from 'hono'
import { BffError } from './errors.ts'

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

// Control characters, backslashes (browsers read "\" as "/") and anything that is not printable ASCII
// once decoded is refused outright rather than normalised: a return path never needs them.
const UNSAFE_PATH_CHARS = /[\u0000-\u001f\u007f\\]/

/**
 * Returns `returnTo` as a same-origin relative path (path, query and fragment), or null when it
 * could lead anywhere else: absolute URLs, scheme-relative `//host`, `/\host`, control characters.
 */
export function safeReturnTo(returnTo: string | undefined, baseUrl: string): string | null {
  if (returnTo === undefined || returnTo === '') return '/'
  if (returnTo.length > 2048) return null
  if (!returnTo.startsWith('/') || returnTo.startsWith('//')) return null
  if (UNSAFE_PATH_CHARS.test(returnTo)) return null
  // Decoding catches "%5c" or "%2f%2f" tricks aimed at servers that decode before redirecting.
  let decoded: string
  try {
    decoded = decodeURIComponent(returnTo)
  } catch {
    return null
  }
  if (decoded.startsWith('//') || UNSAFE_PATH_CHARS.test(decoded)) return null
  const base = new URL(baseUrl)
  const resolved = new URL(returnTo, base)
  if (resolved.origin !== base.origin) return null
  // Dot segments can turn "/.//evil.com" into the path "//evil.com", which a browser would read as
  // another host once it is sent back as a Location.
  const path = resolved.pathname + resolved.search + resolved.hash
  if (path.startsWith('//')) return null
  // Percent-encoded, non-ASCII text grows up to nine-fold: the path goes into the transaction
  // cookie, which must stay within what a browser keeps.
  if (path.length > 2048) return null
  return path
}

export interface CookieNames {
  session: string
  transaction: string
  /** Set by a logout: silent logins (`prompt=none`) are not tried until the next real login. */
  loggedOut: string
}

/**
 * Cookie names follow the origin's scheme: on https the `__Host-` prefix makes the browser insist on
 * `Secure`, `Path=/` and no `Domain`, so a sibling subdomain cannot plant or shadow our cookies.
 */
export function cookieNames(baseUrl: string): CookieNames {
  const secure = isSecureOrigin(baseUrl)
  return {
    session: secure ? '__Host-bff' : 'bff',
    transaction: secure ? '__Host-bff-tx' : 'bff-tx',
    loggedOut: secure ? '__Host-bff-out' : 'bff-out',
  }
}

export function isSecureOrigin(baseUrl: string): boolean {
  return baseUrl.startsWith('https:')
}

/**
 * Constant-time string comparison: both sides are HMACed with a one-off key first, so the time
 * taken says nothing about where they differ, or about their lengths. Web Crypto only.
 */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const key = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  const enc = new TextEncoder()
  const [ha, hb] = await Promise.all([
    crypto.subtle.sign('HMAC', key, enc.encode(a)),
    crypto.subtle.sign('HMAC', key, enc.encode(b)),
  ])
  const x = new Uint8Array(ha)
  const y = new Uint8Array(hb)
  let diff = 0
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!
  return diff === 0
}
