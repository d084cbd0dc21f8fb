/**
 * A real OpenID Provider (panva's oidc-provider) for the demo and for every integration test.
 * Node-only. It listens on 127.0.0.1 over plain http, keeps everything in memory and renders its
 * own small login, consent and logout pages so tests can drive it with plain HTTP.
 *
 * Demo accounts: the account id is the login name. User `demo` signs in with password `demo`;
 * any other name (letters, digits, `._@+-`, up to 64 characters) signs in with password `pass`,
 * so tests can create as many users as they like.
 */
import { generateKeyPairSync } from 'node:crypto'
import { logoutSource, postLogoutSuccessSource, renderError } from './idp-pages.ts'
import { interactionHandler } from './idp-interactions.ts'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
// @ts-expect-error -- oidc-provider ships no type declarations; the few members used here are
// typed by `OidcProvider` below. The deep import skips lib/index.js, whose only extra is a
// console warning on Node < 22 (this project supports Node 20.19+, where the provider works).
import { Provider } from 'oidc-provider/lib/provider.js'
// @ts-expect-error -- untyped, see above. A per-instance store: the default adapter is shared by
// every provider in the process and warns on start.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js'

/** OAuth 2.0 / OIDC client metadata in oidc-provider's (snake_case, registration) format. */
export interface ClientMetadata {
  client_id: string
  client_secret?: string
  redirect_uris?: string[]
  post_logout_redirect_uris?: string[]
  grant_types?: string[]
  response_types?: string[]
  token_endpoint_auth_method?: string
  backchannel_logout_uri?: string
  backchannel_logout_session_required?: boolean
  [key: string]: unknown
}

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
}

/** The slice of oidc-provider's `Provider` this project touches. */
export interface OidcProvider {
  readonly issuer: string
  callback(): (req: IncomingMessage, res: ServerResponse) => void
  on(event: string, listener: (...args: never[]) => void): OidcProvider
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean }
  ): Promise<void>
  Grant: GrantModel
  Client: { new (metadata: ClientMetadata): unknown; adapter: Adapter }
}

export interface Idp {
  /** Issuer identifier, e.g. `http://127.0.0.1:41234` (discovery at `/.well-known/openid-configuration`). */
  issuer: string
  port: number
  provider: OidcProvider
  clients: ClientMetadata[]
  /** Successful token endpoint grants since start or the last `resetCounters()`. */
  grants: { refresh: number; authorizationCode: number }
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

/** Credentials of the default confidential client. */
export const DEMO_BFF_CLIENT = { clientId: 'bff', clientSecret: 'bff-demo-secret' } as const
/** Credentials the demo API uses to introspect access tokens. */
export const DEMO_API_CLIENT = { clientId: 'demo-api', clientSecret: 'demo-api-secret' } as const
export const DEMO_USER = { login: 'demo', password: 'demo' } as const

const DEFAULT_REDIRECT_URIS = [
  'http://localhost:3000/bff/callback',
  'http://127.0.0.1:3000/bff/callback',
]
// Fixed so cookies stay valid across restarts of the demo; nothing here protects real data.
const COOKIE_KEYS = ['demo-idp-cookie-key-1-not-a-secret', 'demo-idp-cookie-key-0-not-a-secret']
const SESSION_TTL = 24 * 60 * 60
const LOGIN_NAME = /^[\w.@+-]{1,64}$/

/**
 * Metadata of a confidential BFF client: client_secret_basic, code + refresh_token grants and,
 * unless `backchannelLogoutUri` is `null`, back-channel logout with `sid`.
 */
export function bffClientMetadata(options: {
  redirectUris: string[]
  postLogoutRedirectUris?: string[]
  backchannelLogoutUri?: string | null
  clientId?: string
  clientSecret?: string
}): ClientMetadata {
  const [first] = options.redirectUris
  if (!first) throw new TypeError('"redirectUris" must list at least one URI')
  const origins = [...new Set(options.redirectUris.map((uri) => new URL(uri).origin))]
  const backchannel =
    options.backchannelLogoutUri === undefined
      ? new URL('/bff/backchannel', first).href
      : options.backchannelLogoutUri
  return {
    client_id: options.clientId ?? DEMO_BFF_CLIENT.clientId,
    client_secret: options.clientSecret ?? DEMO_BFF_CLIENT.clientSecret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: options.redirectUris,
    post_logout_redirect_uris:
      options.postLogoutRedirectUris ?? origins.map((origin) => `${origin}/`),
    // sid is only put into ID tokens of clients that ask for it together with a logout URI.
    ...(backchannel
      ? { backchannel_logout_uri: backchannel, backchannel_logout_session_required: true }
      : {}),
  }
}

/** A resource server's client: it may only authenticate to introspect tokens. */
export function apiClientMetadata(
  clientId: string = DEMO_API_CLIENT.clientId,
  clientSecret: string = DEMO_API_CLIENT.clientSecret
): ClientMetadata {
  return {
    client_id: clientId,
    client_secret: clientSecret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  }
}

/** Password rule of the demo: `demo`/`demo`, any other valid name with `pass`. */
export function checkPassword(login: string, password: string): boolean {
  if (!LOGIN_NAME.test(login)) return false
  return password === (login === DEMO_USER.login ? DEMO_USER.password : 'pass')
}

export async function startIdp(options: IdpOptions = {}): Promise<Idp> {
  const {
    port = 0,
    accessTokenTtl = 3600,
    refreshTokenTtl = 14 * 24 * 60 * 60,
    rotateRefreshToken = true,
    backchannelLogout = true,
  } = options
  for (const [name, value] of Object.entries({ accessTokenTtl, refreshTokenTtl })) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new TypeError(`"${name}" must be a positive integer (seconds)`)
    }
  }
  const clients = options.clients ?? [
    bffClientMetadata({
      redirectUris: options.redirectUris ?? DEFAULT_REDIRECT_URIS,
      postLogoutRedirectUris: options.postLogoutRedirectUris,
      backchannelLogoutUri: backchannelLogout ? options.backchannelLogoutUri : null,
    }),
    apiClientMetadata(),
  ]

  // The issuer must contain the port, so listen first and attach the handler afterwards.
  const server = createServer()
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const actualPort = (server.address() as AddressInfo).port
  const issuer = options.issuer ?? `http://127.0.0.1:${actualPort}`

  // oidc-provider drops offline_access from an authorization request unless it also carries
  // prompt=consent (OIDC Core 11), so a plain login would never get a refresh token. Instead the
  // consent page records offline_access in the grant when the RP asked for it, and codes of such
  // a grant come with refresh tokens. Keyed by the interaction chain id, which survives the
  // login -> consent hop.
  const offlineRequested = new Set<string>()
  const key = signingKey()

  const provider: OidcProvider = new Provider(issuer, {
    adapter: createMemoryAdapter(),
    clients,
    jwks: { keys: [key] },
    cookies: { keys: COOKIE_KEYS },
    // Fill what client metadata leaves out so a bare `{ client_id, client_secret, redirect_uris }`
    // client gets refresh tokens and, given a backchannel_logout_uri, a sid in its ID tokens.
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
      ...(backchannelLogout ? { backchannel_logout_session_required: true } : {}),
    },
    claims: {
      openid: ['sub'],
      profile: ['name', ...Object.keys(options.extraProfileClaims ?? {})],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    responseTypes: ['code'],
    // Put profile/email claims in the ID token too, not only in userinfo: the BFF reads them there.
    conformIdTokenClaims: false,
    findAccount: async (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: async () => ({ ...claimsOf(id), ...options.extraProfileClaims }),
    }),
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true, allowedPolicy: revocationAllowed },
      introspection: { enabled: true, allowedPolicy: introspectionAllowed },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      backchannelLogout: { enabled: backchannelLogout },
      resourceIndicators: { enabled: false },
    },
    interactions: {
      url: async (ctx: OidcContext, interaction: { uid: string; cid: string }) => {
        if (ctx.oidc.route === 'authorization' && rawScope(ctx).includes('offline_access')) {
          // Abandoned logins never reach consent: forget the oldest beyond a bound.
          if (offlineRequested.size >= 1000)
            offlineRequested.delete(offlineRequested.values().next().value!)
          offlineRequested.add(interaction.cid)
        }
        return `/interaction/${interaction.uid}`
      },
    },
    issueRefreshToken: async (ctx: OidcContext, client: ClientModel, code: TokenModel) =>
      client.grantTypeAllowed('refresh_token') && isOffline(code, ctx.oidc.entities.Grant),
    // Same default as oidc-provider for offline grants: they outlive the IdP session (logout at
    // the IdP does not revoke them); everything else ends with it.
    expiresWithSession: async (ctx: OidcContext, code: TokenModel) =>
      !isOffline(code, ctx.oidc.grant),
    rotateRefreshToken,
    ttl: {
      AccessToken: accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: refreshTokenTtl,
      Interaction: 600,
      Session: SESSION_TTL,
      Grant: Math.max(refreshTokenTtl, SESSION_TTL),
    },
    renderError,
    clientBasedCORS: () => false,
    // oidc-provider refuses outgoing requests to special-use addresses (SSRF protection), which
    // would block back-channel logout to a BFF on loopback. Loopback is what this IdP is for.
    fetch: (url: string | URL, init: RequestInit & { dispatcher?: unknown }) => {
      if (!isLoopback(new URL(url).hostname)) return fetch(url, init)
      return fetch(url, { ...init, dispatcher: undefined } as RequestInit)
    },
  })

  const grants = { refresh: 0, authorizationCode: 0 }
  const backchannel = { success: 0, error: 0 }
  provider.on('grant.success', (ctx: OidcContext) => {
    const grantType = ctx.oidc.params.grant_type
    if (grantType === 'authorization_code') grants.authorizationCode++
    if (grantType === 'refresh_token') grants.refresh++
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
    signingKey: key,
    resetCounters() {
      grants.refresh = grants.authorizationCode = 0
      backchannel.success = backchannel.error = 0
    },
    async addClient(metadata) {
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

// ---------------------------------------------------------------------------------------------
// Interactions: login and consent pages

// ---------------------------------------------------------------------------------------------
// Policies and helpers

function claimsOf(id: string): Record<string, unknown> {
  return {
    sub: id,
    name: id === DEMO_USER.login ? 'Demo User' : id,
    email: `${id.toLowerCase()}@example.com`,
    email_verified: true,
  }
}

function isOffline(code: TokenModel, grant: GrantInstance | undefined): boolean {
  return (
    code.scopes.has('offline_access') ||
    !!grant?.getOIDCScope().split(' ').includes('offline_access')
  )
}

// The scope as the RP sent it, before oidc-provider removed offline_access from it.
function rawScope(ctx: OidcContext): string[] {
  const scope = ctx.query?.scope ?? ctx.oidc.body?.scope
  return typeof scope === 'string' ? scope.split(' ') : []
}

// Any authenticated confidential client (the BFF, the demo API) may introspect any token.
async function introspectionAllowed(_ctx: unknown, client: ClientModel): Promise<boolean> {
  return client.clientAuthMethod !== 'none'
}

async function revocationAllowed(
  _ctx: unknown,
  client: ClientModel,
  token: { clientId: string }
): Promise<boolean> {
  return token.clientId === client.clientId
}

function signingKey(): JsonWebKey & { kid: string; use: string; alg: string } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const jwk = privateKey.export({ format: 'jwk' })
  return { ...jwk, kid: `demo-${Date.now().toString(36)}`, use: 'sig', alg: 'RS256' }
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname.startsWith('127.')
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()))
    // Keep-alive sockets (fetch keeps them) would otherwise hold close() open.
    server.closeAllConnections()
  })
}

// ---------------------------------------------------------------------------------------------
// Minimal shapes of oidc-provider internals used above

interface OidcContext {
  host: string
  type: string
  body: unknown
  query?: Record<string, unknown>
  oidc: {
    route: string
    params: Record<string, unknown>
    body?: Record<string, unknown>
    grant?: GrantInstance
    entities: { Grant?: GrantInstance }
  }
}

interface ClientModel {
  clientId: string
  clientAuthMethod: string
  grantTypeAllowed(grantType: string): boolean
}

interface TokenModel {
  scopes: Set<string>
}

interface GrantInstance {
  getOIDCScope(): string
  addOIDCScope(scope: string): void
  addOIDCClaims(claims: string[]): void
  save(): Promise<string>
}

interface GrantModel {
  new (properties: { accountId?: string; clientId?: string }): GrantInstance
  find(id: string): Promise<GrantInstance | undefined>
}

interface Adapter {
  upsert(id: string, payload: object, expiresIn?: number): Promise<void>
}

export interface InteractionDetails {
  uid: string
  cid: string
  grantId?: string
  session?: { accountId?: string }
  params: { client_id?: string; scope?: string; login_hint?: string } & Record<string, unknown>
  prompt: {
    name: string
    reasons: string[]
    details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[] }
  }
}
