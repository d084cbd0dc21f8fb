/**
 * The demo IdP's grants beyond code and refresh, for the BFF's per-route tokens: resource
 * indicators (RFC 8707: a token whose `aud` is one resource, JWT or opaque), client credentials,
 * and OAuth 2.0 Token Exchange (RFC 8693), which oidc-provider leaves to the application: it is
 * registered here with `provider.registerGrantType`.
 */
// @ts-expect-error -- oidc-provider ships no type declarations (see idp-provider.ts).
import * as errors from 'oidc-provider/lib/helpers/errors.js'
import { applyDpopBinding } from 'oidc-provider/lib/helpers/grant_common.js'
import validateDpop from 'oidc-provider/lib/helpers/validate_dpop.js'
import type { ClientModel, OidcContext } from './idp-provider.ts'

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

/** Scopes every resource knows unless `resourceServers` says otherwise. */
export const DEFAULT_RESOURCE_SCOPE = 'api:read api:write'

/** A resource server as the IdP knows it. */
export interface ResourceServerSettings {
  /** The scopes it knows, space-separated. @default DEFAULT_RESOURCE_SCOPE */
  scope?: string
  /** `jwt` (signed: the upstream reads `aud`, `scope`, `sub` itself) or `opaque` (introspected). */
  format?: 'jwt' | 'opaque'
  /** Access token lifetime in seconds. @default the IdP's access token lifetime */
  ttl?: number
}

export interface GrantSettings {
  accessTokenTtl: number
  /**
   * Resources with their own settings. Any other absolute URI is a resource too, with the defaults
   * (JWT tokens, `DEFAULT_RESOURCE_SCOPE`), unless it is in `refusedResources`.
   */
  resourceServers?: Record<string, ResourceServerSettings>
  /** Resources the IdP refuses (`invalid_target`), for tests of a refused grant. */
  refusedResources?: string[]
  /** Issue client-credentials tokens. */
  clientCredentials: boolean
  /** Accept RFC 8693 token exchange. */
  tokenExchange: boolean
}

interface ResourceServerInfo {
  scope: string
  audience: string
  accessTokenFormat: 'jwt' | 'opaque'
  accessTokenTTL: number
}

/** oidc-provider's `features` entries for resource indicators and client credentials. */
export function grantFeatures(settings: GrantSettings) {
  return {
    resourceIndicators: {
      enabled: true,
      // A token for a resource only when one is asked for: without `resource`, the access token
      // stays the userinfo token the BFF's session uses.
      defaultResource: async () => undefined,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (_ctx: unknown, resource: string) =>
        resourceServerInfo(settings, resource),
    },
    clientCredentials: { enabled: settings.clientCredentials },
  }
}

/** What the IdP tells of `resource`; throws `invalid_target` for a refused one. */
export function resourceServerInfo(settings: GrantSettings, resource: string): ResourceServerInfo {
  if (settings.refusedResources?.includes(resource)) {
    throw new errors.InvalidTarget('this resource is not served by this IdP')
  }
  const known = settings.resourceServers?.[resource] ?? {}
  return {
    scope: known.scope ?? DEFAULT_RESOURCE_SCOPE,
    audience: resource,
    accessTokenFormat: known.format ?? 'jwt',
    accessTokenTTL: known.ttl ?? settings.accessTokenTtl,
  }
}

/** Grant types a client may use on this IdP, given what it has turned on. */
export function enabledGrantTypes(settings: GrantSettings): string[] {
  return [
    'authorization_code',
    'refresh_token',
    ...(settings.clientCredentials ? ['client_credentials'] : []),
    ...(settings.tokenExchange ? [TOKEN_EXCHANGE] : []),
  ]
}

/** The provider's surface the exchange grant uses (oidc-provider is untyped). */
export interface ExchangeProvider {
  registerGrantType(
    name: string,
    handler: (ctx: ExchangeContext) => Promise<void>,
    params: string[],
    dupes: string[]
  ): void
  AccessToken: {
    new (properties: Record<string, unknown>): IssuedToken
    find(value: string): Promise<SubjectToken | undefined>
  }
  ResourceServer: new (identifier: string, info: ResourceServerInfo) => unknown
}

interface SubjectToken {
  isValid: boolean
  clientId: string
  accountId: string
  grantId: string
  sessionUid?: string
  sid?: string
  expiresWithSession?: boolean
  scope?: string
}

interface IssuedToken {
  resourceServer?: unknown
  scope?: string
  expiration: number
  tokenType: string
  save(): Promise<string>
}

type ExchangeContext = OidcContext & {
  body: unknown
  oidc: OidcContext['oidc'] & {
    client: ClientModel
    params: Record<string, string | string[] | undefined>
    entity(name: string, value: unknown): void
  }
}

/**
 * RFC 8693 for the demo: a client exchanges a user's access token it was issued itself
 * (`subject_token_type` access_token) for a token for one `resource`, with the requested scopes
 * the resource knows. The new token belongs to the subject token's grant, so revoking the grant
 * (logout) ends it too; its `client_id` says who asked.
 */
export function registerTokenExchange(provider: ExchangeProvider, settings: GrantSettings): void {
  async function tokenExchange(ctx: ExchangeContext): Promise<void> {
    const { params, client } = ctx.oidc
    const one = (name: string): string => {
      const value = params[name]
      if (typeof value !== 'string' || !value) {
        throw new errors.InvalidRequest(`missing or repeated required parameter '${name}'`)
      }
      return value
    }
    if (one('subject_token_type') !== ACCESS_TOKEN_TYPE) {
      throw new errors.InvalidRequest('only access tokens can be exchanged here')
    }
    const subject = await provider.AccessToken.find(one('subject_token'))
    if (!subject?.isValid) throw new errors.InvalidGrant('subject token invalid or expired')
    if (subject.clientId !== client.clientId) {
      throw new errors.InvalidGrant('subject token issued to another client')
    }
    const resource = params.resource
    if (typeof resource !== 'string' || !resource) {
      throw new errors.InvalidTarget('exactly one resource must be requested')
    }
    const info = resourceServerInfo(settings, resource)
    const known = new Set(info.scope.split(' '))
    const scope = (typeof params.scope === 'string' ? params.scope.split(' ') : []).filter((s) =>
      known.has(s)
    )

    const token = new provider.AccessToken({
      accountId: subject.accountId,
      client,
      grantId: subject.grantId,
      gty: TOKEN_EXCHANGE,
      sessionUid: subject.sessionUid,
      sid: subject.sid,
      expiresWithSession: subject.expiresWithSession,
    })
    token.resourceServer = new provider.ResourceServer(resource, info)
    token.scope = scope.join(' ') || undefined
    // As oidc-provider's own grants do: a DPoP proof binds the exchanged token to its key.
    await applyDpopBinding(provider, ctx, await validateDpop(provider, ctx), token)
    ctx.oidc.entity('AccessToken', token)
    const value = await token.save()
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: token.tokenType,
      expires_in: token.expiration,
      ...(token.scope ? { scope: token.scope } : {}),
    }
  }

  provider.registerGrantType(
    TOKEN_EXCHANGE,
    tokenExchange,
    [
      'subject_token',
      'subject_token_type',
      'resource',
      'audience',
      'scope',
      'requested_token_type',
      'actor_token',
      'actor_token_type',
    ],
    ['resource', 'audience']
  )
}
