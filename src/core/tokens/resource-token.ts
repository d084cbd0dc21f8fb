/**
 * RFC 8707 tokens kept with the session: one per resource of the `user` routes, each from a
 * refresh-token grant with `resource`. Such a grant spends (rotates) the refresh token like any
 * refresh, so it is one of the session's token changes: the next generation, written and
 * coordinated as a refresh is (token-manager.ts). A route reads only its own resource's entry.
 */
import { userClaims } from '../oidc/id-token.ts'
import { sessionDpopKey } from '../oidc/dpop.ts'
import type { OidcClient } from '../oidc/types.ts'
import type { TraceContext } from '../observe/trace.ts'
import type { RouteToken, Session } from '../session/types.ts'

/** The session's token for `resource`, if it has one. */
export function resourceToken(session: Session, resource: string): RouteToken | undefined {
  const tokens = session.resourceTokens
  return tokens && Object.hasOwn(tokens, resource) ? tokens[resource] : undefined
}

/**
 * One refresh-token grant for `resource`, a child of `trace`: the session's next generation,
 * holding its token.
 */
export async function resourceGrant(
  oidc: OidcClient,
  session: Session,
  resource: string,
  trace?: TraceContext
): Promise<Session> {
  const tokens = await oidc.refreshForResource(
    session.refreshToken!,
    session.sub,
    resource,
    await sessionDpopKey(session),
    trace
  )
  return {
    ...session,
    refreshToken: tokens.refreshToken,
    idToken: tokens.idToken ?? session.idToken,
    claims: tokens.claims ? { ...session.claims, ...userClaims(tokens.claims) } : session.claims,
    resourceTokens: {
      ...session.resourceTokens,
      [resource]: {
        accessToken: tokens.accessToken,
        expiresAt: tokens.accessTokenExpiresAt,
        lifetime: tokens.accessTokenLifetime,
        ...(tokens.tokenType ? { tokenType: tokens.tokenType } : {}),
      },
    },
    generation: session.generation + 1,
  }
}
