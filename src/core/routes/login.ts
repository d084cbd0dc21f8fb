/** `GET /bff/login`: starts the authorization code flow with PKCE (S256), state and nonce. */
import { Hono } from 'hono'
import type { BffEnv } from '../hono-env.ts'
import { traceOf } from '../observe/spans.ts'
import { BffError } from '../errors.ts'
import { cookieNames, isSecureOrigin } from '../session/cookie-names.ts'
import { safeReturnTo } from '../policy/return-to.ts'
import {
  appendSetCookie,
  isCookieName,
  requestCookies,
  serializeCookie,
} from '../session/cookie.ts'
import { sealExpiresAt } from '../session/seal.ts'
import { MAX_ACR_VALUES, parseAcrValues, parseMaxAge } from '../policy/step-up-params.ts'
import type { StepUp } from '../policy/step-up.ts'
import { dpopKey, newDpopJwk, type DpopJwk } from '../oidc/dpop.ts'
import type { BffServices } from '../services.ts'
import { lastIdp } from './last-idp.ts'

/** What the transaction cookie carries from login to callback, sealed. */
export interface LoginTransactionCookie {
  state: string
  nonce: string
  codeVerifier: string
  returnTo: string
  /**
   * The IdP the login was started at: only its callback takes the transaction (mix-up defence,
   * RFC 9700 4.4). Absent in transactions from before several IdPs, which belong to the first.
   */
  idp?: string
  prompt?: string
  /** Step-up: the ID token's `acr` must be one of these. */
  acr?: readonly string[]
  /** Step-up: the ID token's `auth_time` must be at most this many seconds old. */
  maxAge?: number
  /**
   * With `dpop`: the session's key pair, made here so the code is bound to it (RFC 9449 10) and
   * the callback's code grant proves it. Sealed, as the session cookie seals it.
   */
  dpopKey?: DpopJwk
}

/** Long enough to type a password and pass an MFA step; short enough to be useless when stolen. */
export const TRANSACTION_TTL_SECONDS = 600
const ALLOWED_PROMPTS = new Set(['none', 'login', 'consent', 'select_account'])
/** More logins in flight than this in one browser are abandoned tabs: their cookies are dropped. */
const MAX_TRANSACTIONS = 4
/**
 * All transaction cookies of a browser together, in bytes of `name=value` as the Cookie header
 * carries them. With the session cookie's budget (`BFF_COOKIE_TOTAL_BYTES`, 8 KB by default) the
 * BFF's cookies then stay near 12 KB, under the 16 KB request-header limit of Node and most
 * proxies, however many logins are started: older transactions make room for a new one.
 */
export const TRANSACTION_COOKIES_MAX_BYTES = 4096

export function transactionCookieName(baseUrl: string, state: string): string {
  // One cookie per login, so two tabs logging in at once do not overwrite each other.
  return `${cookieNames(baseUrl).transaction}.${state.slice(0, 16)}`
}

export function loginRoute(s: BffServices) {
  const { baseUrl } = s.config
  const secure = isSecureOrigin(baseUrl)
  const txPrefix = `${cookieNames(baseUrl).transaction}.`

  return new Hono<BffEnv>().get('/bff/login', async (c) => {
    const returnTo = safeReturnTo(c.req.query('returnTo'), baseUrl)
    if (returnTo === null) {
      throw new BffError(400, 'invalid_return_to', 'returnTo must be a relative path on this site.')
    }
    const prompt = c.req.query('prompt')
    if (prompt !== undefined && !ALLOWED_PROMPTS.has(prompt)) {
      throw new BffError(
        400,
        'invalid_request',
        `prompt must be one of ${[...ALLOWED_PROMPTS].join(', ')}.`
      )
    }
    const stepUp = stepUpQuery(c.req.queries('acr'), c.req.queries('maxAge'))
    const cookies = requestCookies(c)
    // `?idp=<name>`: one of the configured IdPs (400 `unknown_idp` otherwise); default the first,
    // but a silent login asks the IdP this browser last logged in with.
    const idp =
      s.idps.named(c.req.queries('idp')) ??
      (prompt === 'none' ? lastIdp(c, s) : undefined) ??
      s.idps.first
    if (prompt === 'none' && cookies[cookieNames(baseUrl).loggedOut]) {
      // Logged out in this browser: a silent login could only bring back the login the user
      // just ended (at an IdP that keeps it). Answered as the IdP would, without asking it.
      const target = new URL(returnTo, baseUrl)
      target.searchParams.set('error', 'login_required')
      s.log('info', 'login.silent_skipped', { reason: 'logged_out' })
      c.header('Cache-Control', 'no-store')
      return c.redirect(target.pathname + target.search + target.hash, 302)
    }
    const dpopJwk = idp.config.dpop ? await newDpopJwk() : undefined
    const request = await idp.oidc.authorizationRequest({
      prompt,
      ...stepUp,
      ...(dpopJwk ? { dpop: await dpopKey(dpopJwk) } : {}),
      trace: traceOf(c),
    })
    const tx: LoginTransactionCookie = {
      state: request.state,
      nonce: request.nonce,
      codeVerifier: request.codeVerifier,
      returnTo,
      idp: idp.config.name,
      ...(prompt ? { prompt } : {}),
      ...stepUp,
      ...(dpopJwk ? { dpopKey: dpopJwk } : {}),
    }
    const sealed = await s.sealer.seal(tx, TRANSACTION_TTL_SECONDS)
    const txName = transactionCookieName(baseUrl, request.state)
    const size = (name: string, value: string) => name.length + 1 + value.length
    if (size(txName, sealed) > TRANSACTION_COOKIES_MAX_BYTES) {
      // Not reachable with the returnTo limit today; a cookie this large would be dropped anyway.
      throw new BffError(400, 'invalid_request', 'This login request is too large.')
    }

    // Logins under way in other tabs stay valid; past the count or byte limit (abandoned ones
    // pile up), the oldest make room for this one.
    const pending = Object.keys(cookies)
      // A name the BFF could not have written is not one of its transactions.
      .filter((name) => name.startsWith(txPrefix) && isCookieName(name))
      .sort((a, b) => sealExpiresAt(cookies[a]!) - sealExpiresAt(cookies[b]!))
    let kept = 1
    let bytes = size(txName, sealed)
    // Newest first. Expiry is in whole seconds: ties keep the Cookie header's order, which is
    // the order the browser got them in, so the last of a tie is the newest.
    for (const name of pending.reverse()) {
      bytes += size(name, cookies[name]!)
      if (++kept <= MAX_TRANSACTIONS && bytes <= TRANSACTION_COOKIES_MAX_BYTES) continue
      // From here on, this and every older one go.
      bytes = Infinity
      appendSetCookie(c, serializeCookie(name, '', { secure, sameSite: 'Lax', maxAge: 0 }))
    }
    // SameSite=Lax: the IdP's redirect back is a cross-site top-level navigation, which Strict would strip.
    appendSetCookie(
      c,
      serializeCookie(txName, sealed, { secure, sameSite: 'Lax', maxAge: TRANSACTION_TTL_SECONDS })
    )
    c.header('Cache-Control', 'no-store')
    s.log('info', 'login.start', {
      idp: idp.config.name,
      prompt,
      acr: stepUp.acr?.join(' '),
      maxAge: stepUp.maxAge,
    })
    return c.redirect(request.url.href, 302)
  })
}

/**
 * Step-up asked of this login: `acr` (values separated by spaces, any of which will do) and
 * `maxAge` (seconds), each at most once. Throws 400 `invalid_request` on anything else, naming
 * the parameter.
 */
function stepUpQuery(acr: string[] | undefined, maxAge: string[] | undefined): StepUp {
  const stepUp: StepUp = {}
  if (acr) {
    const values = acr.length === 1 ? parseAcrValues(acr[0]!) : undefined
    if (!values) {
      throw new BffError(
        400,
        'invalid_request',
        `acr must be up to ${MAX_ACR_VALUES} values of printable characters, separated by spaces.`
      )
    }
    stepUp.acr = values
  }
  if (maxAge) {
    const seconds = maxAge.length === 1 ? parseMaxAge(maxAge[0]!) : undefined
    if (seconds === undefined) {
      throw new BffError(400, 'invalid_request', 'maxAge must be a whole number of seconds.')
    }
    stepUp.maxAge = seconds
  }
  return stepUp
}
