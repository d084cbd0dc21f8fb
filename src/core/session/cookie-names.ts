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
