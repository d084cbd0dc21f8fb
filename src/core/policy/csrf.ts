import type { Context, MiddlewareHandler } from 'hono'
import { BffError } from '../errors.ts'
import type { Audit } from '../observe/audit.ts'

/** Why a request failed the CSRF checks: the audit trail's `reason`. */
export type CsrfRefusal = 'missing_header' | 'cross_site' | 'missing_origin' | 'wrong_origin'

/**
 * CSRF guard for the JSON endpoints and the API proxy. `X-CSRF: 1` is a custom header, which a
 * cross-site form or `<img>` cannot send and a cross-origin `fetch` can only send after a CORS
 * preflight the BFF never approves. Fetch Metadata adds a second, independent line: browsers mark
 * cross-site requests with `Sec-Fetch-Site: cross-site`, which is refused even with the header.
 */
export function checkCsrf(c: Context): void {
  const refusal = csrfRefusal(c)
  if (refusal) throw csrfError(refusal)
}

/**
 * `checkCsrf` that writes a refusal to the audit trail (`csrf_rejected`) before it throws. It runs
 * before the session is read, so the line has no subject: a forged request costs no store read.
 */
export async function guardCsrf(c: Context, audit: Audit, route?: string): Promise<void> {
  const refusal = csrfRefusal(c)
  if (!refusal) return
  await audit(c, 'csrf_rejected', { route, reason: refusal })
  throw csrfError(refusal)
}

function csrfRefusal(c: Context): CsrfRefusal | undefined {
  if (c.req.header('x-csrf') !== '1') return 'missing_header'
  if (isCrossSite(c)) return 'cross_site'
  return undefined
}

function csrfError(refusal: CsrfRefusal): BffError {
  switch (refusal) {
    case 'missing_header':
      return new BffError(403, 'csrf', 'This endpoint needs the "X-CSRF: 1" request header.')
    case 'missing_origin':
    case 'wrong_origin':
      return new BffError(403, 'csrf', "A WebSocket must be opened from this site's own pages.")
    default:
      return new BffError(403, 'csrf', 'Cross-site requests are not allowed.')
  }
}

/**
 * The CSRF check of a WebSocket upgrade, which cannot carry `X-CSRF` (the browser's WebSocket API
 * sets no headers) and which no CORS preflight guards: any page on any site may open a socket to
 * the BFF, and the browser sends the session cookie with it (Cross-Site WebSocket Hijacking). What
 * the browser always sends, and a page cannot change, is `Origin`: it must be `baseUrl`'s own.
 * `Sec-Fetch-Site: cross-site` is refused as for every other call. Refusals go to the audit trail
 * (`csrf_rejected`) before the 403 `csrf` is thrown; the session is never read.
 */
export async function guardOrigin(
  c: Context,
  audit: Audit,
  origin: string,
  route?: string
): Promise<void> {
  const sent = c.req.header('origin')
  const refusal: CsrfRefusal | undefined =
    sent === undefined
      ? 'missing_origin'
      : sent !== origin
        ? 'wrong_origin'
        : isCrossSite(c)
          ? 'cross_site'
          : undefined
  if (!refusal) return
  await audit(c, 'csrf_rejected', { route, reason: refusal })
  throw csrfError(refusal)
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
 * Fetch Metadata and pass. With `audit`, the refusal is written to the trail first.
 */
export async function refuseCrossSiteWrite(
  c: Context,
  audit?: Audit,
  route?: string
): Promise<void> {
  if (!SAFE_METHODS.has(c.req.method) && isCrossSite(c)) {
    await audit?.(c, 'csrf_rejected', { route, reason: 'cross_site' })
    throw csrfError('cross_site')
  }
}

/** `checkCsrf` as middleware; with `audit`, refusals go to the audit trail (`guardCsrf`). */
export const csrfGuard = (audit?: Audit): MiddlewareHandler =>
  async function csrfGuard(c, next) {
    if (audit) await guardCsrf(c, audit)
    else checkCsrf(c)
    await next()
  }
