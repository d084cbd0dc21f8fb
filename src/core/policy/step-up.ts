/**
 * Step-up: where the SPA sends the user for a stronger or more recent login. One address for every
 * answer that asks for one (a route's `acr`/`maxAge`, an upstream's RFC 9470 challenge), so the
 * SPA handles them all the same way.
 */

/**
 * The `/bff/login` address that asks the IdP for `acr` (any of them) and an authentication at most
 * `maxAge` seconds old, then returns to `returnTo` (a same-origin path).
 * @example stepUpLoginUrl({ returnTo: '/orders', acr: ['mfa'], maxAge: 300 })
 * // '/bff/login?returnTo=%2Forders&acr=mfa&maxAge=300'
 */
export function stepUpLoginUrl({
  returnTo,
  acr,
  maxAge,
}: {
  returnTo: string
  acr: string[] | undefined
  maxAge: number | undefined
}): string {
  const query = new URLSearchParams({ returnTo })
  if (acr && acr.length > 0) query.set('acr', acr.join(' '))
  if (maxAge !== undefined) query.set('maxAge', String(maxAge))
  return `/bff/login?${query}`
}
