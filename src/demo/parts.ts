/**
 * The demo's moving parts besides the BFF: the embedded IdP and the demo API on free loopback
 * ports, with a fresh client secret, and the BFF settings that point at them. Shared by
 * `npm start` (BFF on Node) and `npm run dev:worker` (BFF in workerd).
 */
import { randomBytes } from 'node:crypto'
import { ADMIN_ACR, startDemoApi } from './api.ts'
import { DEMO_APP_NAME, startIdp } from './idp.ts'

/** The role the demo's admin route requires; every demo account has it. */
export const DEMO_ADMIN_ROLE = 'admin'

export interface DemoParts {
  /** `BFF_*` settings for a BFF at `baseUrl`; each given setting wins over the demo's. */
  settings: Record<string, string>
  /**
   * The demo's config file (`BFF_CONFIG`) as JSON text: its routes and their policies. Undefined
   * when a given `BFF_API` names the routes instead.
   */
  configFile?: string
  stop(): Promise<void>
}

export async function startDemoParts(
  baseUrl: string,
  given: Readonly<Record<string, string | undefined>> = {}
): Promise<DemoParts> {
  const clientId = 'bff-demo'
  const clientSecret = randomBytes(24).toString('base64url')
  const idp = await startIdp({
    port: 0,
    // Every demo account is an admin: the admin route requires the role (and a second factor).
    extraProfileClaims: { roles: [DEMO_ADMIN_ROLE] },
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [`${baseUrl}/bff/callback`],
        client_name: DEMO_APP_NAME,
        post_logout_redirect_uris: [`${baseUrl}/`, `${baseUrl}/logged-out.html`],
        backchannel_logout_uri: `${baseUrl}/bff/backchannel`,
        // Client credentials for the service route below: the BFF's own token.
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      },
    ],
  })
  const api = await startDemoApi({ port: 0, issuer: idp.issuer, clientId, clientSecret })
  const routes = [
    // The admin area needs a second factor: without it the BFF answers step_up_required itself,
    // and the demo API, behind it, would ask for it too (an RFC 9470 challenge of its own).
    {
      prefix: '/api/admin/',
      upstream: `${api.url}/admin/`,
      require: { roles: DEMO_ADMIN_ROLE },
      acr: ADMIN_ACR,
    },
    // A public catalogue: no session needed, and no token ever sent.
    { prefix: '/api/catalog/', upstream: `${api.url}/catalog/`, token: 'none' },
    // A service route: the demo API gets the BFF's own client-credentials token, no user needed.
    { prefix: '/api/service/', upstream: `${api.url}/`, token: 'client' },
    { prefix: '/api/', upstream: `${api.url}/` },
  ]
  return {
    ...(given.BFF_API ? {} : { configFile: JSON.stringify({ routes }) }),
    settings: {
      BFF_ISSUER: idp.issuer,
      BFF_CLIENT_ID: clientId,
      BFF_CLIENT_SECRET: clientSecret,
      BFF_BASE_URL: baseUrl,
      BFF_SESSION_SECRET: given.BFF_SESSION_SECRET ?? randomBytes(32).toString('base64url'),
      ...(given.BFF_API ? { BFF_API: given.BFF_API } : {}),
      BFF_POST_LOGOUT_REDIRECT: given.BFF_POST_LOGOUT_REDIRECT ?? '/logged-out.html',
    },
    async stop() {
      await api.stop()
      await idp.stop()
    },
  }
}
