/**
 * The bearer token a route's upstream gets (DESIGN "Route policies": `token` and `resource`):
 * - `none`, or `optional` without a session: none at all;
 * - `user` / `optional` without `resource`: the session's own access token;
 * - `user` / `optional` with `resource`: the session's token for that resource (RFC 8707), from a
 *   refresh-token grant with `resource` (resource-token.ts, through the token manager);
 * - `exchange`: the session's access token exchanged for one for `resource` (RFC 8693,
 *   exchange-token.ts);
 * - `client`: the BFF's own client-credentials token (client-token.ts), no session needed.
 * A token is only ever looked up under the route's own resource (and scopes), so no upstream gets
 * a token minted for another route's. A route whose grant the IdP's discovery does not list is
 * refused before any grant is sent (503 `grant_not_supported`).
 */
import type { Context } from 'hono'
import type { ApiRoute } from '../config/options.ts'
import { BffError } from '../errors.ts'
import type { BffEnv } from '../hono-env.ts'
import { grantFor } from '../oidc/grants.ts'
import { traceOf } from '../observe/spans.ts'
import { freshSession } from '../routes/fresh-session.ts'
import type { DpopJwk, Session } from '../session/types.ts'
import type { BffServices } from '../services.ts'
import { resourceToken } from './resource-token.ts'

/**
 * A route's token, `DPoP` when the IdP bound it to a key (RFC 9449): the session's, or for a
 * `client` route the BFF's own. `dpopKey` is that key, for the upstream call's proofs.
 */
export interface RouteAccessToken {
  accessToken: string
  tokenType?: 'DPoP'
  dpopKey?: DpopJwk
}

/**
 * The access token for `route`'s upstream, or undefined when it gets none. `session` is the
 * request's session with a fresh access token, as the token mode stage found it (null when the
 * route needs none: `none`, `client`, `optional` without one). Throws a `BffError` when the token
 * cannot be had.
 */
export async function routeToken(
  s: BffServices,
  c: Context<BffEnv>,
  route: ApiRoute,
  session: Session | null
): Promise<RouteAccessToken | undefined> {
  const mode = route.token ?? 'user'
  if (mode === 'none' || (mode === 'optional' && !session)) return undefined
  // The session's own token needs no grant: the everyday route answers without asking the IdP's
  // metadata.
  if (session && !grantFor(route)) return bound(session, session.accessToken, session.tokenType)
  // Client credentials are the first IdP's; every other grant goes to the session's own IdP.
  const oidc = mode === 'client' || !session ? s.oidc : s.idps.oidcFor(session)
  const missing = await oidc.unsupportedGrant(route)
  if (missing) {
    throw new BffError(
      503,
      'grant_not_supported',
      "The identity provider does not offer the grant this route's token needs.",
      { cause: Object.assign(new Error(`IdP does not list ${missing}`), { code: missing }) }
    )
  }

  if (mode === 'client') {
    return s.clientTokens.token({ scopes: route.scopes, resource: route.resource }, traceOf(c))
  }
  if (!session) throw new BffError(401, 'unauthenticated', 'Not logged in.')

  if (mode === 'exchange') {
    const exchanged = await s.exchanges.token(
      session,
      { resource: route.resource!, scopes: route.scopes },
      traceOf(c)
    )
    if (exchanged.session) await keep(s, c, exchanged.session)
    return bound(session, exchanged.accessToken, exchanged.tokenType)
  }

  if (!route.resource) return bound(session, session.accessToken, session.tokenType)
  const result = await freshSession(s, c, session, route.resource)
  if (result.kind === 'error') throw result.error
  const token = resourceToken(result.session, route.resource)
  if (!token || token.expiresAt <= s.now() / 1000) {
    throw new BffError(502, 'token_unavailable', "No token could be had for this route's resource.")
  }
  return bound(session, token.accessToken, token.tokenType)
}

/** A token of the session's: `DPoP` ones with the session's key. */
function bound(session: Session, accessToken: string, tokenType?: 'DPoP'): RouteAccessToken {
  return tokenType === 'DPoP' && session.dpopKey
    ? { accessToken, tokenType, dpopKey: session.dpopKey }
    : { accessToken }
}

/** Stores a session that gained a token; 401 when it ended meanwhile (a logout). */
async function keep(s: BffServices, c: Context<BffEnv>, session: Session): Promise<void> {
  if (!(await s.sessions.update(c, session)) && !(await s.sessions.load(c))) {
    throw new BffError(401, 'unauthenticated', 'Not logged in.')
  }
}
