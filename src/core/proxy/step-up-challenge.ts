/**
 * An upstream's RFC 9470 step-up challenge: a 401 whose `WWW-Authenticate` says
 * `Bearer error="insufficient_user_authentication"` with `acr_values` and/or `max_age`. Both
 * transports read it here before they strip the header (no `WWW-Authenticate` ever reaches the
 * browser), and the proxy answers the SPA 401 `step_up_required` with a login address that asks
 * the IdP for exactly that. Anything else in the header, or a header that does not parse, is
 * only stripped.
 */
import type { Context } from 'hono'
import type { ApiRoute } from '../config/options.ts'
import type { BffServices } from '../services.ts'
import { stepUpIdp, stepUpLoginUrl, stepUpReturnTo, type StepUp } from '../policy/step-up.ts'
import { parseAcrValues, parseMaxAge } from '../policy/step-up-params.ts'

/** One challenge of a `WWW-Authenticate` value: the scheme in lower case, its parameters. */
export interface AuthChallenge {
  scheme: string
  /** Parameter names in lower case, values unquoted. */
  params: Record<string, string>
  token68?: string
}

// A header this long is no challenge an API sends; parsing it would only cost time.
const MAX_HEADER_LENGTH = 8192
// RFC 9110 5.6.2 tchar; 11.2 token68; 5.6.4 qdtext and quoted-pair's characters.
const TOKEN = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+/y
const TOKEN68 = /[A-Za-z0-9\-._~+/]+=*/y
const QUOTED_CHAR = /[\t\x20-\x7e\x80-\xff]/
// `name =` (then not `=`, a comma or the end, which would make it a token68) opens a parameter.
const PARAM_START = /[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]*=(?!=|[ \t]*(?:,|$))/y
// Schemes whose error codes are RFC 6750's: a DPoP-bound token gets the same challenge (RFC 9449 7.1).
const TOKEN_SCHEMES = new Set(['bearer', 'dpop'])

/**
 * Every challenge of a `WWW-Authenticate` value (several header lines joined with ", ", as fetch
 * and the Node transport join them), per RFC 9110 11.6.1: schemes and parameter names are
 * case-insensitive, values are tokens or quoted strings with `\` escapes, a challenge's
 * parameters and the challenges themselves are separated by commas. Undefined when the value is
 * malformed anywhere, or names a parameter twice in one challenge.
 */
export function parseChallenges(header: string): AuthChallenge[] | undefined {
  if (header.length > MAX_HEADER_LENGTH) return undefined
  let i = 0
  const skip = (chars: string) => {
    const start = i
    while (i < header.length && chars.includes(header[i]!)) i++
    return i - start
  }
  const match = (pattern: RegExp) => {
    pattern.lastIndex = i
    const found = pattern.exec(header)?.[0] ?? ''
    i += found.length
    return found
  }
  const atParam = () => {
    PARAM_START.lastIndex = i
    return PARAM_START.test(header)
  }
  const quoted = (): string | undefined => {
    let value = ''
    i++ // the opening quote
    while (i < header.length) {
      let ch = header[i++]!
      if (ch === '"') return value
      if (ch === '\\') {
        if (i >= header.length) return undefined
        ch = header[i++]!
      }
      if (!QUOTED_CHAR.test(ch)) return undefined
      value += ch
    }
    return undefined // never closed
  }
  /** A challenge's parameters; stops at the comma before the next challenge, or at the end. */
  const params = (into: Record<string, string>): boolean => {
    for (;;) {
      const name = match(TOKEN).toLowerCase()
      skip(' \t')
      i++ // the "=" atParam saw
      skip(' \t')
      const value = header[i] === '"' ? quoted() : match(TOKEN) || undefined
      if (value === undefined || name in into) return false
      into[name] = value
      skip(' \t')
      const comma = i
      if (header[i] !== ',') return true
      skip(' \t,')
      if (!atParam()) {
        i = comma
        return true
      }
    }
  }

  const challenges: AuthChallenge[] = []
  skip(' \t,')
  while (i < header.length) {
    const scheme = match(TOKEN)
    if (!scheme) return undefined
    // No prototype: a parameter called "__proto__" is just a parameter.
    const challenge: AuthChallenge = { scheme: scheme.toLowerCase(), params: Object.create(null) }
    challenges.push(challenge)
    if (skip(' ') > 0 && i < header.length && header[i] !== ',') {
      if (atParam()) {
        if (!params(challenge.params)) return undefined
      } else {
        challenge.token68 = match(TOKEN68) || undefined
        if (!challenge.token68) return undefined
      }
    }
    skip(' \t')
    if (i < header.length && header[i] !== ',') return undefined
    skip(' \t,')
  }
  return challenges
}

/**
 * What an upstream's answer asks for, when it is an RFC 9470 step-up challenge: a 401 whose
 * `Bearer` (or `DPoP`) challenge has `error="insufficient_user_authentication"` and at least one
 * of `acr_values` and `max_age`, each as `/bff/login` accepts it. Any other challenge, or one with
 * a bad value, is only stripped: the SPA gets the upstream's 401 without it.
 */
export function stepUpChallenge(
  status: number,
  wwwAuthenticate: string | null | undefined
): StepUp | undefined {
  if (status !== 401 || !wwwAuthenticate) return undefined
  const challenge = parseChallenges(wwwAuthenticate)?.find(
    (found) =>
      TOKEN_SCHEMES.has(found.scheme) && found.params.error === 'insufficient_user_authentication'
  )
  if (!challenge) return undefined
  const stepUp: StepUp = {}
  const { acr_values: acrValues, max_age: maxAge } = challenge.params
  // Asks for nothing a login could bring: passed on as the upstream's plain 401.
  if (acrValues === undefined && maxAge === undefined) return undefined
  if (acrValues !== undefined) {
    stepUp.acr = parseAcrValues(acrValues)
    if (!stepUp.acr) return undefined
  }
  if (maxAge !== undefined) {
    stepUp.maxAge = parseMaxAge(maxAge)
    if (stepUp.maxAge === undefined) return undefined
  }
  return stepUp
}

/**
 * The SPA's answer to an upstream's step-up challenge: the same 401 `step_up_required` as a
 * route's `acr`/`maxAge` refusal (policy/access.ts), with what the upstream asked for and the
 * login address that gets it, back to the page in the call's `Referer` (else `/`). The upstream's
 * own answer goes no further.
 */
export async function stepUpRequired(
  s: Pick<BffServices, 'config' | 'log'>,
  c: Context,
  upstream: Response,
  stepUp: StepUp,
  route: Pick<ApiRoute, 'prefix'>
): Promise<Response> {
  await upstream.body?.cancel().catch(() => {})
  const returnTo = stepUpReturnTo(c.req.header('referer'), s.config.baseUrl)
  s.log('info', 'proxy.step_up_required', { route: route.prefix, acr: stepUp.acr?.join(' ') })
  return c.json(
    {
      error: 'step_up_required',
      message: 'This needs a stronger or more recent login.',
      acr: stepUp.acr,
      maxAge: stepUp.maxAge,
      // The request's session, as the route's policy loaded it.
      loginUrl: stepUpLoginUrl(returnTo, stepUp, stepUpIdp(s.config, c.get('session'))),
    },
    401,
    { 'Cache-Control': 'no-store' }
  )
}
