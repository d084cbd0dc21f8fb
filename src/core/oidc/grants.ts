/**
 * The grants behind per-route tokens (DESIGN "Route policies", `token` and `resource`), each one
 * openid-client call: a refresh-token grant for one resource (RFC 8707), a client-credentials
 * grant, and OAuth 2.0 Token Exchange (RFC 8693). Plus what the IdP's discovery says it serves:
 * a route whose grant is missing from `grant_types_supported` is reported once discovery works and
 * refused at its calls instead of sending a grant that cannot succeed.
 */
import * as client from 'openid-client'
import type { ApiRoute, Config } from '../config/options.ts'
import { BffError } from '../errors.ts'
import { dpopOption, tokenTypeOf } from './dpop-grant.ts'
import type { DpopKey } from './dpop.ts'
import { toBffError } from './errors.ts'
import { checkSenderConstrained } from './fapi2.ts'
import { traceParameters } from './trace-params.ts'
import type { TraceContext } from '../observe/trace.ts'
import type { GrantedToken, OidcDeps, TokenSet } from './types.ts'

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange'
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

/** The grant type a route's token needs, or undefined for the session's own token. */
export function grantFor(route: ApiRoute): string | undefined {
  const mode = route.token ?? 'user'
  if (mode === 'client') return 'client_credentials'
  if (mode === 'exchange') return TOKEN_EXCHANGE_GRANT
  if ((mode === 'user' || mode === 'optional') && route.resource) return 'refresh_token'
  return undefined
}

/**
 * The resources the login asks for (RFC 8707 `resource` in the authorization request): the IdP
 * only grants a resource's token later, with the refresh token, for resources asked for here.
 */
export function loginResources(config: Config): string[] {
  const resources = config.api
    .filter((route) => grantFor(route) === 'refresh_token')
    .map((route) => route.resource!)
  return [...new Set(resources)]
}

/**
 * Each grant's `trace` is the work it is part of (a span of the BFF's, or a request's context): the
 * IdP's request then carries a child `traceparent` of it (trace-params.ts).
 */
export interface RouteGrants {
  /**
   * A refresh-token grant for `resource`: the resource's access token, the (rotated) refresh
   * token, and a refreshed ID token's claims, checked to be about `expectedSub`. Throws 401
   * `session_expired` when the refresh token is refused, 502 `token_unavailable` when the
   * resource is.
   */
  refreshForResource(
    refreshToken: string,
    expectedSub: string,
    resource: string,
    dpop?: DpopKey,
    trace?: TraceContext
  ): Promise<TokenSet>
  /**
   * The BFF's own token: client credentials with the route's scopes and resource; with `dpop`,
   * the grant carries its proofs, for a token bound to that key.
   */
  clientCredentials(
    params: { scopes?: readonly string[]; resource?: string },
    dpop?: DpopKey,
    trace?: TraceContext
  ): Promise<GrantedToken>
  /** `subjectToken` (a user's access token) exchanged for a token for `resource`. */
  exchange(
    subjectToken: string,
    params: { resource: string; scopes?: readonly string[] },
    dpop?: DpopKey,
    trace?: TraceContext
  ): Promise<GrantedToken>
  /**
   * The grant `route` needs when the IdP's discovery lists the grants it serves without it;
   * undefined when it is listed, the list is not published, or the route needs no grant.
   */
  unsupportedGrant(route: ApiRoute): Promise<string | undefined>
}

export interface RouteGrantsParts {
  configuration: () => Promise<client.Configuration>
}

export function createRouteGrants(
  config: Config,
  deps: OidcDeps,
  { configuration }: RouteGrantsParts
): RouteGrants {
  const now = deps.now ?? Date.now
  const granted = (tokens: client.TokenEndpointResponse): GrantedToken => {
    checkSenderConstrained(config, tokens)
    // Without expires_in we cannot know; assume a short life so the token is renewed early.
    const lifetime = tokens.expires_in ?? 300
    return {
      accessToken: tokens.access_token,
      expiresAt: Math.floor(now() / 1000) + lifetime,
      lifetime,
      scope: tokens.scope,
      ...tokenTypeOf(tokens),
    }
  }
  const scope = (scopes?: readonly string[]): Record<string, string> =>
    scopes?.length ? { scope: scopes.join(' ') } : {}

  return {
    async refreshForResource(refreshToken, expectedSub, resource, dpop, trace) {
      const oidc = await configuration()
      try {
        const tokens = await client.refreshTokenGrant(
          oidc,
          refreshToken,
          { resource, ...traceParameters(trace) },
          dpopOption(oidc, dpop)
        )
        const idClaims = tokens.claims()
        // OIDC Core 12.2, as for every refresh: a refreshed ID token is about the same user.
        if (idClaims && idClaims.sub !== expectedSub) {
          throw new BffError(401, 'session_expired', 'The session has ended.', {
            cause: Object.assign(new Error('refreshed ID token has a different sub'), {
              code: 'id_token_sub_changed',
            }),
          })
        }
        const token = granted(tokens)
        return {
          accessToken: token.accessToken,
          refreshToken: tokens.refresh_token ?? refreshToken,
          idToken: tokens.id_token,
          accessTokenExpiresAt: token.expiresAt,
          accessTokenLifetime: token.lifetime,
          ...(token.tokenType ? { tokenType: token.tokenType } : {}),
          claims: idClaims ? { ...idClaims } : undefined,
        }
      } catch (err) {
        throw toBffError(err, 'resource')
      }
    },

    async clientCredentials({ scopes, resource }, dpop, trace) {
      const oidc = await configuration()
      try {
        return granted(
          await client.clientCredentialsGrant(
            oidc,
            { ...scope(scopes), ...(resource ? { resource } : {}), ...traceParameters(trace) },
            dpopOption(oidc, dpop)
          )
        )
      } catch (err) {
        throw toBffError(err, 'client')
      }
    },

    async exchange(subjectToken, { resource, scopes }, dpop, trace) {
      const oidc = await configuration()
      try {
        return granted(
          await client.genericGrantRequest(
            oidc,
            TOKEN_EXCHANGE_GRANT,
            {
              subject_token: subjectToken,
              subject_token_type: ACCESS_TOKEN_TYPE,
              resource,
              ...scope(scopes),
              ...traceParameters(trace),
            },
            dpopOption(oidc, dpop)
          )
        )
      } catch (err) {
        throw toBffError(err, 'exchange')
      }
    },

    async unsupportedGrant(route) {
      const grant = grantFor(route)
      if (!grant) return undefined
      return missingGrant((await configuration()).serverMetadata(), grant)
    },
  }
}

/** `grant` when `metadata` lists the grants its IdP serves without it. */
function missingGrant(metadata: client.ServerMetadata, grant: string): string | undefined {
  const supported = metadata.grant_types_supported
  return Array.isArray(supported) && !supported.includes(grant) ? grant : undefined
}

/**
 * Once discovery works: one error line per route whose grant the IdP does not list, naming the
 * route and the grant. On Node this is the start-up check; Workers discover at first use.
 */
export function reportUnsupportedGrants(
  config: Config,
  metadata: client.ServerMetadata,
  log: NonNullable<OidcDeps['log']>
): void {
  for (const route of config.api) {
    const grant = grantFor(route)
    const missing = grant && missingGrant(metadata, grant)
    if (missing) {
      log('error', 'oidc.grant_unsupported', {
        route: route.prefix,
        token: route.token ?? 'user',
        grant: missing,
        reason: `the IdP's discovery does not list ${missing} in grant_types_supported: this route's calls answer 503`,
      })
    }
  }
}
