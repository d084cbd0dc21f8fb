/**
 * A proxy route's policy after CSRF, in DESIGN's order ("Route policies"): the method (405), the
 * token mode, i.e. which session the route needs (401), then the user's IdP and claims (403
 * `forbidden`), scopes (403 `insufficient_scope`) and step-up (401 `step_up_required`). The first
 * check that fails answers; nothing refused reaches the upstream. Every refusal is logged as one
 * `policy.denied` line (the route's prefix, never the path; the reason; a subject hash, never a
 * token) and counted.
 */
import type { Context } from 'hono'
import type { ApiRoute, Config, TokenMode } from '../config/options.ts'
import { BffError, type BffErrorCode } from '../errors.ts'
import type { BffEnv } from '../hono-env.ts'
import { subjectHash } from '../observe/log.ts'
import { allowedMethods } from '../proxy/forward.ts'
import { freshSession } from '../routes/fresh-session.ts'
import type { BffServices } from '../services.ts'
import type { Session } from '../session/types.ts'
import { unmetClaims } from './claims.ts'
import { meetsStepUp, stepUpIdp, stepUpLoginUrl, stepUpReturnTo, type StepUp } from './step-up.ts'

/** Why the user checks refused a session, and what the answer must tell the SPA. */
export type AccessRefusal =
  | { reason: 'forbidden'; key: 'idps' | 'require' }
  | { reason: 'insufficient_scope'; key: 'scopes'; missing: string[] }
  | { reason: 'step_up_required'; key: 'acr' | 'maxAge'; stepUp: StepUp }

/**
 * The user checks of `route` against `session`, in order: `idps`, `require`, `scopes`, then
 * `acr` and `maxAge`. The first that fails, or undefined when all pass. No I/O: `nowSeconds` is
 * the BFF's one clock.
 */
export function accessRefusal(
  route: ApiRoute,
  session: Session,
  config: Pick<Config, 'claims'>,
  nowSeconds: number
): AccessRefusal | undefined {
  // A session from before the IdP was recorded has none, and so matches no list.
  if (route.idps && !(session.idp !== undefined && route.idps.includes(session.idp))) {
    return { reason: 'forbidden', key: 'idps' }
  }
  if (route.require && unmetClaims(session.claims, route.require, config.claims).length > 0) {
    return { reason: 'forbidden', key: 'require' }
  }
  if (route.scopes) {
    const granted = new Set(session.scope?.split(' '))
    const missing = route.scopes.filter((scope) => !granted.has(scope))
    if (missing.length > 0) return { reason: 'insufficient_scope', key: 'scopes', missing }
  }
  if (route.acr || route.maxAge !== undefined) {
    const stepUp: StepUp = { acr: route.acr, maxAge: route.maxAge }
    if (!meetsStepUp(session.claims, stepUp, nowSeconds)) {
      const key = route.acr && !meetsStepUp(session.claims, { acr: route.acr }, nowSeconds)
      return { reason: 'step_up_required', key: key ? 'acr' : 'maxAge', stepUp }
    }
  }
  return undefined
}

/** Keys that only a user can meet: on an `optional` route they need a session. */
const needsUser = (route: ApiRoute) =>
  route.idps !== undefined ||
  route.require !== undefined ||
  route.scopes !== undefined ||
  route.acr !== undefined ||
  route.maxAge !== undefined

/** The methods stage: 405 `method_not_allowed` with `Allow` for a method the route does not pass. */
export async function checkMethod(
  s: BffServices,
  c: Context<BffEnv>,
  route: ApiRoute
): Promise<Response | undefined> {
  const methods = allowedMethods(route)
  if (methods.has(c.req.method)) return undefined
  await recordDenial(s, c, route, 'method_not_allowed', 'methods')
  // Answered here rather than thrown: the error renderer sends no headers of the route's.
  return c.json({ error: 'method_not_allowed', message: 'This method is not allowed here.' }, 405, {
    Allow: [...methods].join(', '),
    'Cache-Control': 'no-store',
  })
}

/**
 * The token mode and the user checks of `route`: the session the upstream call is made for (null
 * when the route sends no user token), its access token fresh, or the refusal's answer. `user`
 * needs a session; `optional` uses one when there is one; `none` never looks (no store access, no
 * token), nor does `client`; `exchange` needs one. A refused refresh throws 401
 * `session_expired`, an IdP outage its 503, as for any call.
 */
export async function checkAccess(
  s: BffServices,
  c: Context<BffEnv>,
  route: ApiRoute
): Promise<{ session: Session | null } | Response> {
  const mode: TokenMode = route.token ?? 'user'
  // `client` sends the BFF's own token (tokens/route-token.ts): no user, no session.
  if (mode === 'none' || mode === 'client') return { session: null }
  const loaded = await s.sessions.load(c)
  if (!loaded) {
    if (mode === 'optional' && !needsUser(route)) return { session: null }
    await recordDenial(s, c, route, 'unauthenticated', 'token')
    throw new BffError(401, 'unauthenticated', 'Not logged in.')
  }
  let result
  try {
    result = await freshSession(s, c, loaded)
  } catch (err) {
    // The refresh token was refused (or the session ended meanwhile): the user must log in.
    if (err instanceof BffError && err.status === 401) {
      await recordDenial(s, c, route, err.code, 'token', loaded)
    }
    throw err
  }
  if (result.kind === 'error') throw result.error
  const session = result.session

  // The user's claims are read through the claims map of the IdP the session came from.
  const claims = s.idps.of(session)?.config.claims ?? {}
  const refusal = accessRefusal(route, session, { claims }, Math.floor(s.now() / 1000))
  if (!refusal) return { session }
  await recordDenial(s, c, route, refusal.reason, refusal.key, session)
  const headers = { 'Cache-Control': 'no-store' }
  switch (refusal.reason) {
    case 'forbidden':
      return c.json(
        { error: 'forbidden', message: 'You are not allowed to use this.' },
        403,
        headers
      )
    case 'insufficient_scope':
      return c.json(
        {
          error: 'insufficient_scope',
          message: 'The access token lacks scopes this needs.',
          scopes: refusal.missing,
        },
        403,
        headers
      )
    case 'step_up_required': {
      const returnTo = stepUpReturnTo(c.req.header('referer'), s.config.baseUrl)
      return c.json(
        {
          error: 'step_up_required',
          message: 'This needs a stronger or more recent login.',
          acr: refusal.stepUp.acr,
          maxAge: refusal.stepUp.maxAge,
          loginUrl: stepUpLoginUrl(returnTo, refusal.stepUp, stepUpIdp(s.config, session)),
        },
        401,
        headers
      )
    }
  }
}

/** 401s: what a logged-out user, or one whose login is too weak or old, meets every day. */
const EVERYDAY: ReadonlySet<BffErrorCode> = new Set([
  'unauthenticated',
  'session_expired',
  'step_up_required',
])

/** One `policy.denied` line, one audit line (`policy_denied`) and one count per refusal. */
export async function recordDenial(
  s: BffServices,
  c: Context,
  route: ApiRoute,
  reason: BffErrorCode,
  key: string,
  session?: Session
): Promise<void> {
  s.metrics.policyDenial(route.prefix, reason)
  s.log(EVERYDAY.has(reason) ? 'info' : 'warn', 'policy.denied', {
    route: route.prefix,
    reason,
    key,
    idp: session?.idp,
    sub: session ? await subjectHash(session.sub) : undefined,
  })
  await s.audit(c, 'policy_denied', { session, route: route.prefix, reason, check: key })
}
