/**
 * Step-up: a route that needs a stronger or more recent authentication (`acr`, `maxAge`) than the
 * session has answers 401 `step_up_required` with the login URL that gets it, so the SPA sends the
 * user there and back to where they were. `/bff/login?acr=…&maxAge=…` asks the IdP for it.
 */
import { safeReturnTo } from './return-to.ts'

/** What a route asks of the authentication: one of these `acr` values, within `maxAge` seconds. */
export interface StepUp {
  acr?: readonly string[]
  maxAge?: number
}

/**
 * `/bff/login?returnTo=…&acr=…&maxAge=…`: the login that meets `stepUp`, back to `returnTo` (a
 * same-origin path, checked by the caller). `acr` values are space-separated, as `acr_values`.
 */
export function stepUpLoginUrl(returnTo: string, stepUp: StepUp, idp?: string): string {
  const query = new URLSearchParams({ returnTo })
  // With several IdPs the step-up goes to the one the session came from, not the default.
  if (idp !== undefined) query.set('idp', idp)
  if (stepUp.acr?.length) query.set('acr', stepUp.acr.join(' '))
  if (stepUp.maxAge !== undefined) query.set('maxAge', String(stepUp.maxAge))
  return `/bff/login?${query}`
}

/** Whether the session's `acr` and `auth_time` claims meet `stepUp` at `nowSeconds`. */
export function meetsStepUp(
  claims: Record<string, unknown>,
  stepUp: StepUp,
  nowSeconds: number
): boolean {
  if (stepUp.acr && !(typeof claims.acr === 'string' && stepUp.acr.includes(claims.acr))) {
    return false
  }
  if (stepUp.maxAge !== undefined) {
    // Without auth_time, how long ago the user authenticated is unknown: not recent enough.
    const authTime = claims.auth_time
    if (typeof authTime !== 'number' || nowSeconds - authTime > stepUp.maxAge) return false
  }
  return true
}

/**
 * Where the user goes back to after a step-up: the page that made the call (its `Referer`) when it
 * is a safe path on this origin, else `/`. The Referer is only a hint: whatever it says, the login
 * can only return to this site.
 */
export function stepUpReturnTo(referer: string | undefined, baseUrl: string): string {
  if (!referer) return '/'
  let url: URL
  try {
    url = new URL(referer)
  } catch {
    return '/'
  }
  if (url.origin !== new URL(baseUrl).origin) return '/'
  return safeReturnTo(url.pathname + url.search, baseUrl) ?? '/'
}

/** The IdP a step-up login names: the session's, when there are several to choose from. */
export function stepUpIdp(
  config: { idps?: readonly unknown[] },
  session: { idp?: string } | null | undefined
): string | undefined {
  return (config.idps?.length ?? 1) > 1 ? session?.idp : undefined
}
