export interface CookieNames {
  session: string
  transaction: string
  /** Set by a logout: silent logins (`prompt=none`) are not tried until the next real login. */
  loggedOut: string
  /**
   * With several IdPs, the name of the one this browser last logged in with: where a silent login
   * and a logout without a session go when the SPA names none (the first IdP could only answer
   * `login_required` for another IdP's user, and could not end that user's login).
   */
  lastIdp: string
}

/**
 * Every cookie name of the BFF starts with one of these (the first on https): the only cookies of
 * a request it reads, so a site's other cookies cost it nothing.
 */
export const COOKIE_PREFIXES = ['__Host-bff', 'bff'] as const

/**
 * Cookie names follow the origin's scheme: on https the `__Host-` prefix makes the browser insist on
 * `Secure`, `Path=/` and no `Domain`, so a sibling subdomain cannot plant or shadow our cookies.
 */
export function cookieNames(baseUrl: string): CookieNames {
  const base = isSecureOrigin(baseUrl) ? COOKIE_PREFIXES[0] : COOKIE_PREFIXES[1]
  return {
    session: base,
    transaction: `${base}-tx`,
    loggedOut: `${base}-out`,
    lastIdp: `${base}-idp`,
  }
}

export function isSecureOrigin(baseUrl: string): boolean {
  return baseUrl.startsWith('https:')
}
