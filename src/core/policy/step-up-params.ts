/**
 * What a step-up asks of a login: the `acr` values any of which will do, and how recent the user's
 * authentication must be (`max_age`, seconds). Read the same way from `/bff/login?acr=…&maxAge=…`
 * and from an upstream's RFC 9470 challenge, and checked against the ID token the login brings
 * back.
 */
import { CLOCK_TOLERANCE_SECONDS } from '../oidc/id-token.ts'
import type { StepUp } from './step-up.ts'

/** Most `acr` values one request may name, and most characters all of them may take together. */
export const MAX_ACR_VALUES = 10
export const MAX_ACR_TEXT = 512
// Printable ASCII except `"` and `\`: such a value goes into a URL, a header's quoted string and
// the log as it is, never needing an escape. Real acr values are names or URIs.
const ACR_VALUE = /^[\x21\x23-\x5b\x5d-\x7e]+$/
/** About 68 years: beyond any real max_age, and far inside what a number holds exactly. */
const MAX_AGE_LIMIT = 2 ** 31 - 1

/**
 * `acr` values separated by single or repeated spaces (OIDC `acr_values`), or undefined when the
 * text is empty, too long, has too many values, or a value with a character outside printable
 * ASCII (or a quote or backslash).
 */
export function parseAcrValues(text: string): string[] | undefined {
  if (text.length > MAX_ACR_TEXT) return undefined
  const values = text.split(' ').filter((value) => value !== '')
  if (values.length === 0 || values.length > MAX_ACR_VALUES) return undefined
  if (!values.every((value) => ACR_VALUE.test(value))) return undefined
  return [...new Set(values)]
}

/** A `max_age`: a whole number of seconds, 0 or more, in plain digits; else undefined. */
export function parseMaxAge(text: string): number | undefined {
  if (!/^\d{1,10}$/.test(text)) return undefined
  const seconds = Number(text)
  return seconds <= MAX_AGE_LIMIT ? seconds : undefined
}

export type StepUpProblem =
  'acr_not_met' | 'auth_time_missing' | 'auth_time_too_old' | 'auth_time_in_future'

/**
 * Why the claims of a new ID token do not meet `stepUp` (a code for the log), or undefined when
 * they do: `acr` must be one of the values asked for, and `auth_time` no older than `maxAge`
 * seconds by the BFF's clock, give or take the usual clock tolerance. An IdP is free to answer
 * `acr_values` with any other level (it is a request, not an order), so this is where it is held
 * to it.
 */
export function stepUpProblem(
  claims: Record<string, unknown>,
  stepUp: StepUp,
  nowSeconds: number
): StepUpProblem | undefined {
  if (stepUp.acr && !(typeof claims.acr === 'string' && stepUp.acr.includes(claims.acr))) {
    return 'acr_not_met'
  }
  if (stepUp.maxAge !== undefined) {
    const authTime = claims.auth_time
    if (typeof authTime !== 'number' || !Number.isFinite(authTime)) return 'auth_time_missing'
    if (authTime > nowSeconds + CLOCK_TOLERANCE_SECONDS) return 'auth_time_in_future'
    if (nowSeconds - authTime > stepUp.maxAge + CLOCK_TOLERANCE_SECONDS) return 'auth_time_too_old'
  }
  return undefined
}
