/**
 * The demo IdP's clients: the BFF (confidential, code flow, back-channel logout) and the demo API
 * (introspection only), in oidc-provider's client metadata format.
 */

import { TOKEN_EXCHANGE } from './idp-grants.ts'

/** OAuth 2.0 / OIDC client metadata in oidc-provider's (snake_case, registration) format. */
export interface ClientMetadata {
  client_id: string
  client_secret?: string
  /** Shown on the IdP's consent and sign-out pages. @example 'Demo App' */
  client_name?: string
  redirect_uris?: string[]
  post_logout_redirect_uris?: string[]
  grant_types?: string[]
  response_types?: string[]
  token_endpoint_auth_method?: string
  backchannel_logout_uri?: string
  backchannel_logout_session_required?: boolean
  [key: string]: unknown
}

/** Credentials of the default confidential client. */
export const DEMO_BFF_CLIENT = { clientId: 'bff', clientSecret: 'bff-demo-secret' } as const
/** Credentials the demo API uses to introspect access tokens. */
export const DEMO_API_CLIENT = { clientId: 'demo-api', clientSecret: 'demo-api-secret' } as const
/** What the IdP's pages call the demo SPA behind the BFF ("Sign out of Demo App?"). */
export const DEMO_APP_NAME = 'Demo App'

export const DEFAULT_REDIRECT_URIS = [
  'http://localhost:3000/bff/callback',
  'http://127.0.0.1:3000/bff/callback',
]

/**
 * Metadata of a confidential BFF client: client_secret_basic; code, refresh_token,
 * client_credentials and token exchange grants (the IdP keeps those it has turned on); and, unless
 * `backchannelLogoutUri` is `null`, back-channel logout with `sid`.
 */
export function bffClientMetadata(options: {
  redirectUris: string[]
  postLogoutRedirectUris?: string[]
  backchannelLogoutUri?: string | null
  clientId?: string
  clientSecret?: string
  /** @default 'Demo App' */
  clientName?: string
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
    client_name: options.clientName ?? DEMO_APP_NAME,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials', TOKEN_EXCHANGE],
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
