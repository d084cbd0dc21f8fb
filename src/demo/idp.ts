/**
 * A real OpenID Provider (panva's oidc-provider) for the demo and for every integration test.
 * Node-only. It listens on 127.0.0.1 over plain http, keeps everything in memory and renders its
 * own login, consent and logout pages so tests can drive it with plain HTTP.
 *
 * The parts: idp-provider.ts (oidc-provider's configuration), idp-clients.ts (the BFF and API
 * clients), idp-accounts.ts (demo users: `demo`/`demo`, any other name with `pass`),
 * idp-interactions.ts and idp-pages.ts (the pages). This file starts and stops it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  apiClientMetadata,
  bffClientMetadata,
  DEFAULT_REDIRECT_URIS,
  type ClientMetadata,
} from './idp-clients.ts'
import { interactionHandler } from './idp-interactions.ts'
import { enabledGrantTypes, TOKEN_EXCHANGE, type ResourceServerSettings } from './idp-grants.ts'
import { createProvider, type OidcContext, type OidcProvider } from './idp-provider.ts'

export { checkPassword, DEMO_USER } from './idp-accounts.ts'
export {
  apiClientMetadata,
  bffClientMetadata,
  DEMO_API_CLIENT,
  DEMO_APP_NAME,
  DEMO_BFF_CLIENT,
  type ClientMetadata,
} from './idp-clients.ts'
export type { InteractionDetails, OidcProvider } from './idp-provider.ts'
export {
  ACCESS_TOKEN_TYPE,
  DEFAULT_RESOURCE_SCOPE,
  TOKEN_EXCHANGE,
  type ResourceServerSettings,
} from './idp-grants.ts'

export interface IdpOptions {
  /** Port on 127.0.0.1; `0` picks a free one. @default 0 */
  port?: number
  /**
   * The issuer when a proxy sits in front of the IdP (tests put one there to see or change its
   * answers); the proxy must keep the `Host` header, which endpoint URLs are built from.
   * @default `http://127.0.0.1:<port>`
   */
  issuer?: string
  /**
   * Clients to register, replacing the defaults (the `bff` client built from the options below and
   * the `demo-api` client the demo API introspects with).
   * @example [bffClientMetadata({ redirectUris: ['http://127.0.0.1:3000/bff/callback'] })]
   */
  clients?: ClientMetadata[]
  /** Redirect URIs of the default `bff` client. @default ['http://localhost:3000/bff/callback', 'http://127.0.0.1:3000/bff/callback'] */
  redirectUris?: string[]
  /** Post-logout redirect URIs of the default `bff` client. @default each redirect URI's origin + '/' */
  postLogoutRedirectUris?: string[]
  /**
   * Back-channel logout URI of the default `bff` client; `null` registers none (and then ID tokens
   * carry no `sid`). @default the first redirect URI's origin + '/bff/backchannel'
   */
  backchannelLogoutUri?: string | null
  /** Access token lifetime in seconds. @default 3600 */
  accessTokenTtl?: number
  /** Refresh token lifetime in seconds. @default 1209600 (14 days) */
  refreshTokenTtl?: number
  /** Issue a new refresh token on every refresh (the old one then fails with invalid_grant). @default true */
  rotateRefreshToken?: boolean
  /** Enable OIDC Back-Channel Logout 1.0. @default true */
  backchannelLogout?: boolean
  /**
   * Extra claims every account has, released with the `profile` scope and put in the ID token:
   * e.g. a large `groups` list, to test how the BFF handles big tokens.
   */
  extraProfileClaims?: Record<string, unknown>
  /**
   * Resources (RFC 8707) with settings of their own. Any other absolute URI is a resource too:
   * JWT access tokens with `aud` set to it and the scopes `api:read api:write`.
   * @example { 'urn:ledger': { format: 'opaque', scope: 'ledger:read' } }
   */
  resourceServers?: Record<string, ResourceServerSettings>
  /**
   * Scopes the IdP knows and grants at login besides `openid`, `profile`, `email` and
   * `offline_access`: they appear in the login's token response `scope`, as an IdP that lists
   * every granted scope there does. A resource's scope may be one too.
   * @example ['ledger:read']
   */
  extraScopes?: string[]
  /** Resources the IdP refuses with `invalid_target`. @default [] */
  refusedResources?: string[]
  /** Issue client-credentials tokens (and say so in discovery). @default true */
  clientCredentials?: boolean
  /** Accept RFC 8693 token exchange (and say so in discovery). @default true */
  tokenExchange?: boolean
  /**
   * Pushed authorization requests (RFC 9126): `false` turns the endpoint off (and out of
   * discovery), `'required'` refuses every authorization request that was not pushed and says
   * `require_pushed_authorization_requests: true` in discovery. @default true
   */
  par?: boolean | 'required'
  /**
   * DPoP (RFC 9449) nonces: `true` makes the token and userinfo endpoints ask every proof for a
   * `DPoP-Nonce` of theirs (`use_dpop_nonce`). DPoP itself is always served. @default false
   */
  dpopNonce?: boolean
  /**
   * FAPI 2.0 (oidc-provider's `fapi` feature, profile 2.0) for clients authenticating with
   * private_key_jwt, and only PS256, ES256 or EdDSA for their assertions and DPoP proofs. With
   * `par: 'required'`, `dpopNonce` and a client with `dpop_bound_access_tokens`, a FAPI 2.0 IdP.
   * @default false
   */
  fapi?: boolean
}

export interface Idp {
  /** Issuer identifier, e.g. `http://127.0.0.1:41234` (discovery at `/.well-known/openid-configuration`). */
  issuer: string
  port: number
  provider: OidcProvider
  clients: ClientMetadata[]
  /**
   * Successful token endpoint grants since start or the last `resetCounters()`: `refresh` counts
   * refresh grants without `resource`, `resource` those with one (RFC 8707).
   */
  grants: {
    refresh: number
    authorizationCode: number
    resource: number
    clientCredentials: number
    tokenExchange: number
  }
  /**
   * The IdP's private signing key (RS256 JWK). Tests use it to mint logout tokens that are valid
   * in every respect but the one under test.
   */
  signingKey: JsonWebKey & { kid: string; alg: string }
  /** Back-channel logout deliveries (a failed one does not stop the IdP logout). */
  backchannel: { success: number; error: number }
  resetCounters(): void
  /**
   * Registers (or replaces) a client after start, e.g. once a BFF listening on an ephemeral port
   * knows its redirect URI. Static clients from `options.clients` cannot be replaced.
   */
  addClient(metadata: ClientMetadata): Promise<void>
  stop(): Promise<void>
}

export async function startIdp(options: IdpOptions = {}): Promise<Idp> {
  const {
    port = 0,
    accessTokenTtl = 3600,
    refreshTokenTtl = 14 * 24 * 60 * 60,
    rotateRefreshToken = true,
    backchannelLogout = true,
    clientCredentials = true,
    tokenExchange = true,
  } = options
  for (const [name, value] of Object.entries({ accessTokenTtl, refreshTokenTtl })) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new TypeError(`"${name}" must be a positive integer (seconds)`)
    }
  }
  const grantSettings = {
    resourceServers: options.resourceServers,
    refusedResources: options.refusedResources,
    clientCredentials,
    tokenExchange,
  }
  // A client may only list grant types the IdP serves: those turned off here are dropped.
  const enabled = new Set(enabledGrantTypes({ ...grantSettings, accessTokenTtl }))
  const servable = (client: ClientMetadata): ClientMetadata =>
    client.grant_types
      ? { ...client, grant_types: client.grant_types.filter((type) => enabled.has(type)) }
      : client
  const clients = (
    options.clients ?? [
      bffClientMetadata({
        redirectUris: options.redirectUris ?? DEFAULT_REDIRECT_URIS,
        postLogoutRedirectUris: options.postLogoutRedirectUris,
        backchannelLogoutUri: backchannelLogout ? options.backchannelLogoutUri : null,
      }),
      apiClientMetadata(),
    ]
  ).map(servable)

  // The issuer must contain the port, so listen first and attach the handler afterwards.
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const actualPort = (server.address() as AddressInfo).port
  const issuer = options.issuer ?? `http://127.0.0.1:${actualPort}`

  const { provider, offlineRequested, signingKey } = createProvider(issuer, {
    clients,
    accessTokenTtl,
    refreshTokenTtl,
    rotateRefreshToken,
    backchannelLogout,
    extraProfileClaims: options.extraProfileClaims,
    extraScopes: options.extraScopes,
    grants: grantSettings,
    par: options.par ?? true,
    dpopNonce: options.dpopNonce ?? false,
    fapi: options.fapi ?? false,
  })

  const grants = {
    refresh: 0,
    authorizationCode: 0,
    resource: 0,
    clientCredentials: 0,
    tokenExchange: 0,
  }
  const backchannel = { success: 0, error: 0 }
  provider.on('grant.success', (ctx: OidcContext) => {
    const { grant_type: grantType, resource } = ctx.oidc.params
    if (grantType === 'authorization_code') grants.authorizationCode++
    if (grantType === 'refresh_token' && resource) grants.resource++
    else if (grantType === 'refresh_token') grants.refresh++
    if (grantType === 'client_credentials') grants.clientCredentials++
    if (grantType === TOKEN_EXCHANGE) grants.tokenExchange++
  })
  provider.on('backchannel.success', () => void backchannel.success++)
  provider.on('backchannel.error', (_ctx: unknown, error: Error) => {
    backchannel.error++
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : ''
    console.warn(`[idp] back-channel logout failed: ${error.message}${cause}`)
  })
  // Errors the provider turns into a 500 are otherwise invisible in test output.
  provider.on('server_error', (_ctx: unknown, error: Error) => {
    console.error('[idp] server_error', error)
  })

  const interactions = interactionHandler(provider, offlineRequested)
  const oidc = provider.callback()
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.url?.startsWith('/interaction/')) void interactions(req, res)
    else oidc(req, res)
  })

  return {
    issuer,
    port: actualPort,
    provider,
    clients,
    grants,
    backchannel,
    signingKey,
    resetCounters() {
      for (const name of Object.keys(grants) as (keyof typeof grants)[]) grants[name] = 0
      backchannel.success = backchannel.error = 0
    },
    async addClient(added) {
      const metadata = servable(added)
      try {
        new provider.Client(metadata) // validates the metadata now rather than at first use
      } catch (error) {
        const { error_description: reason } = error as { error_description?: string }
        throw new TypeError(`client "${metadata.client_id}": ${reason ?? String(error)}`)
      }
      await provider.Client.adapter.upsert(metadata.client_id, metadata)
    },
    stop: () => closeServer(server),
  }
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()))
    // Keep-alive sockets (fetch keeps them) would otherwise hold close() open.
    server.closeAllConnections()
  })
}
