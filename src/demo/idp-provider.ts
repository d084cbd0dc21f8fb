/**
 * The demo IdP's oidc-provider configuration: tokens and their lifetimes, the features the BFF
 * uses (revocation, introspection, RP-initiated and back-channel logout, PKCE), the pages
 * (idp-pages.ts) and the policies behind them. Plus the few shapes of oidc-provider's untyped
 * internals this project touches.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
// @ts-expect-error -- oidc-provider ships no type declarations; the few members used here are
// typed by `OidcProvider` below. The deep import skips lib/index.js, whose only extra is a
// console warning on Node < 22 (this project supports Node 20.19+, where the provider works).
import { Provider } from 'oidc-provider/lib/provider.js'
// @ts-expect-error -- untyped, see above. A per-instance store: the default adapter is shared by
// every provider in the process and warns on start.
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js'
import { claimsOf } from './idp-accounts.ts'
import { ACR, mfaPolicy, tokenAuthClaims } from './idp-mfa.ts'
import type { ClientMetadata } from './idp-clients.ts'
import {
  grantFeatures,
  registerTokenExchange,
  type ExchangeProvider,
  type GrantSettings,
} from './idp-grants.ts'
import { logoutSource, postLogoutSuccessSource, renderError } from './idp-pages.ts'

// Fixed so cookies stay valid across restarts of the demo; nothing here protects real data.
const COOKIE_KEYS = ['demo-idp-cookie-key-1-not-a-secret', 'demo-idp-cookie-key-0-not-a-secret']
const SESSION_TTL = 24 * 60 * 60

export interface ProviderSettings {
  clients: ClientMetadata[]
  accessTokenTtl: number
  refreshTokenTtl: number
  rotateRefreshToken: boolean
  backchannelLogout: boolean
  extraProfileClaims?: Record<string, unknown>
  /** Scopes the IdP grants at login besides the OIDC ones (a resource's may be among them). */
  extraScopes?: string[]
  /** Resource indicators, client credentials and token exchange (idp-grants.ts). */
  grants: Omit<GrantSettings, 'accessTokenTtl'>
  /** Pushed authorization requests: served, off, or required of every client. @default true */
  par?: boolean | 'required'
  /** DPoP proofs must carry the IdP's nonce. @default false */
  dpopNonce?: boolean
  /** FAPI 2.0 for private_key_jwt clients, and only its algorithms. @default false */
  fapi?: boolean
}

export interface DemoProvider {
  provider: OidcProvider
  /** Interaction chains (`cid`) whose authorization request asked for offline_access. */
  offlineRequested: Set<string>
  signingKey: JsonWebKey & { kid: string; alg: string }
}

export function createProvider(issuer: string, settings: ProviderSettings): DemoProvider {
  const { accessTokenTtl, refreshTokenTtl, backchannelLogout, extraProfileClaims } = settings
  // oidc-provider drops offline_access from an authorization request unless it also carries
  // prompt=consent (OIDC Core 11), so a plain login would never get a refresh token. Instead the
  // consent page records offline_access in the grant when the RP asked for it, and codes of such
  // a grant come with refresh tokens. Keyed by the interaction chain id, which survives the
  // login -> consent hop.
  const offlineRequested = new Set<string>()
  const pushedOffline = new Set<string>()
  const key = signingKey()
  const grants: GrantSettings = { ...settings.grants, accessTokenTtl }

  const provider: OidcProvider = new Provider(issuer, {
    adapter: createMemoryAdapter(),
    clients: settings.clients,
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
      // How and when the user signed in, in every ID token, not only when the RP asks.
      openid: ['sub', 'acr', 'amr', 'auth_time'],
      profile: ['name', ...Object.keys(extraProfileClaims ?? {})],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', ...(settings.extraScopes ?? [])],
    // Every login says how the user signed in: `pwd`, or `mfa` after the one-time code (idp-mfa.ts).
    acrValues: [ACR.password, ACR.mfa],
    extraTokenClaims: tokenAuthClaims,
    responseTypes: ['code'],
    // Put profile/email claims in the ID token too, not only in userinfo: the BFF reads them there.
    conformIdTokenClaims: false,
    findAccount: async (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: async () => claimsOf(id, extraProfileClaims),
    }),
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true, allowedPolicy: revocationAllowed },
      introspection: { enabled: true, allowedPolicy: introspectionAllowed },
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      backchannelLogout: { enabled: backchannelLogout },
      pushedAuthorizationRequests: {
        enabled: settings.par !== false,
        requirePushedAuthorizationRequests: settings.par === 'required',
      },
      // DPoP is served to every client; a client with dpop_bound_access_tokens must use it.
      dPoP: settings.dpopNonce
        ? { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true }
        : { enabled: true },
      ...grantFeatures(grants),
      // FAPI 2.0 Security Profile for the clients that sign assertions (the BFF in the demo's
      // fapi2 mode); the demo API, which introspects with a secret, is no FAPI client.
      fapi: settings.fapi ? { enabled: true, profile: fapiProfile } : { enabled: false },
    },
    // FAPI 2.0 5.4.1: PS256, ES256 or EdDSA, for client assertions and DPoP proofs alike.
    ...(settings.fapi
      ? {
          enabledJWA: {
            clientAuthSigningAlgValues: ['PS256', 'ES256', 'EdDSA'],
            dPoPSigningAlgValues: ['ES256', 'EdDSA'],
          },
        }
      : {}),
    interactions: {
      policy: mfaPolicy(),
      url: async (ctx: OidcContext, interaction: { uid: string; cid: string }) => {
        const uri = ctx.query?.request_uri ?? ctx.oidc.body?.request_uri
        const offline =
          typeof uri === 'string'
            ? pushedOffline.delete(uri)
            : rawScope(ctx).includes('offline_access')
        if (ctx.oidc.route === 'authorization' && offline) {
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
    rotateRefreshToken: settings.rotateRefreshToken,
    ttl: {
      // A resource's own lifetime when it has one (idp-grants.ts), else the IdP's.
      AccessToken: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
        token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
      ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
        token.resourceServer?.accessTokenTTL ?? accessTokenTtl,
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
  notePushedOffline(provider, pushedOffline)
  if (grants.tokenExchange) registerTokenExchange(provider, grants)
  return { provider, offlineRequested, signingKey: key }
}

function fapiProfile(_ctx: unknown, client: ClientModel | undefined): string | undefined {
  return client?.clientAuthMethod === 'private_key_jwt' ? '2.0' : undefined
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

/**
 * Pushed authorization requests (RFC 9126) that asked for offline_access: the IdP strips it from
 * what it stores, so it is noted here, by `request_uri`, as the PAR endpoint answers.
 */
function notePushedOffline(provider: OidcProvider, pushed: Set<string>): void {
  provider.use(async (ctx: OidcContext & { status: number }, next: () => Promise<void>) => {
    await next()
    const uri = (ctx.body as { request_uri?: unknown } | undefined)?.request_uri
    if (
      ctx.oidc?.route === 'pushed_authorization_request' &&
      ctx.status === 201 &&
      typeof uri === 'string' &&
      rawScope(ctx).includes('offline_access')
    ) {
      if (pushed.size >= 1000) pushed.delete(pushed.values().next().value!)
      pushed.add(uri)
    }
  })
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

// ---------------------------------------------------------------------------------------------
// Minimal shapes of oidc-provider internals used by the demo IdP

/** The slice of oidc-provider's `Provider` this project touches. */
export interface OidcProvider extends ExchangeProvider {
  readonly issuer: string
  callback(): (req: IncomingMessage, res: ServerResponse) => void
  on(event: string, listener: (...args: never[]) => void): OidcProvider
  use(middleware: (ctx: never, next: () => Promise<void>) => Promise<void>): void
  interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
  interactionFinished(
    req: IncomingMessage,
    res: ServerResponse,
    result: Record<string, unknown>,
    options?: { mergeWithLastSubmission?: boolean }
  ): Promise<void>
  Grant: GrantModel
  Client: {
    new (metadata: ClientMetadata): unknown
    adapter: Adapter
    find(id: string): Promise<ClientModel | undefined>
  }
}

export interface OidcContext {
  host: string
  type: string
  body: unknown
  query?: Record<string, unknown>
  oidc: {
    route: string
    params: Record<string, unknown>
    body?: Record<string, unknown>
    grant?: GrantInstance
    client?: ClientModel
    session?: { accountId?: string; acr?: string }
    entities: {
      Grant?: GrantInstance
      AuthorizationCode?: LoginSource
      RefreshToken?: LoginSource
    }
  }
}

export interface ClientModel {
  clientId: string
  clientName?: string
  clientAuthMethod: string
  grantTypeAllowed(grantType: string): boolean
}

/** What a code or refresh token remembers of the login it comes from. */
interface LoginSource {
  acr?: string
  authTime?: number
}

interface TokenModel {
  scopes: Set<string>
}

interface GrantInstance {
  getOIDCScope(): string
  addOIDCScope(scope: string): void
  addOIDCClaims(claims: string[]): void
  addResourceScope(resource: string, scope: string): void
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
  params: { client_id?: string; scope?: string; login_hint?: string; acr_values?: string } & Record<
    string,
    unknown
  >
  prompt: {
    name: string
    reasons: string[]
    details: {
      missingOIDCScope?: string[]
      missingOIDCClaims?: string[]
      missingResourceScopes?: Record<string, string[]>
    }
  }
}
