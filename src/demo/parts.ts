/**
 * The demo's moving parts besides the BFF: two embedded IdPs and the demo API on free loopback
 * ports, with fresh client secrets, and the BFF settings and config file that point at them.
 * Shared by `npm start` (BFF on Node), `npm run dev:worker` (BFF in workerd) and the browser tests.
 *
 * `BFF_DEMO_PROFILE=fapi2` runs it all in the FAPI 2.0 profile: the IdPs are FAPI 2.0 IdPs (PAR
 * required, DPoP-bound tokens with nonces, private_key_jwt only, their FAPI 2.0 profile on), the
 * BFF's clients sign assertions with a fresh key instead of holding a secret and follow
 * `profile: "fapi2"`, and the demo API takes the DPoP-bound tokens it then gets, proofs checked.
 *
 * The two IdPs say the same thing in different shapes, as a workforce and a partner directory do:
 * "Corp" puts the user's roles where Keycloak does (`realm_access.roles`), "Partner" where Entra ID
 * puts group names (`groups`). The config file maps both to one claim, `roles`, which the SPA shows
 * and the admin route requires.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { ADMIN_ACR, startDemoApi } from './api.ts'
import { apiClientMetadata, DEMO_APP_NAME, startIdp, type Idp } from './idp.ts'

/** The role the demo's admin route requires; every demo account has it, at either IdP. */
export const DEMO_ADMIN_ROLE = 'admin'

/** One demo IdP: its name in the config file and how its accounts carry their roles. */
export interface DemoIdpSpec {
  /** The key in the config file's `idps`, in `/bff/login?idp=` and the redirect URI. */
  name: string
  /** What the SPA's login button says. */
  label: string
  /** Claims every account has at this IdP (released with `profile`, in the ID token). */
  accountClaims: Record<string, unknown>
  /** The config file's `claims` for this IdP: normalised name to dot path. */
  claims: Record<string, string>
}

/** The demo's IdPs, in config order: the first is the default login. */
export const DEMO_IDPS: readonly DemoIdpSpec[] = [
  {
    name: 'corp',
    label: 'Corp',
    accountClaims: { realm_access: { roles: [DEMO_ADMIN_ROLE] } },
    claims: { roles: 'realm_access.roles' },
  },
  {
    name: 'partner',
    label: 'Partner',
    accountClaims: { groups: [DEMO_ADMIN_ROLE] },
    claims: { roles: 'groups' },
  },
]

/** A running demo IdP with the BFF client registered at it. */
export interface DemoIdp {
  name: string
  label: string
  idp: Idp
  clientId: string
  /** The client's secret; none in the fapi2 profile, which signs assertions with `clientKey`. */
  clientSecret?: string
  /** In the fapi2 profile: the private JWK the BFF signs its client assertions with. */
  clientKey?: JsonWebKey
}

/** `BFF_DEMO_PROFILE`: the profile the demo runs in; `fapi2`, or unset for none. */
export const DEMO_PROFILES = ['fapi2'] as const

export interface DemoParts {
  /** `BFF_*` settings for a BFF at `baseUrl`; each given setting wins over the demo's. */
  settings: Record<string, string>
  /**
   * The demo's config file (`BFF_CONFIG`) as JSON text: both IdPs, the routes and their policies.
   * Undefined when a given `BFF_API` names the routes instead: then one IdP, from `settings`.
   */
  configFile?: string
  /** The running IdPs, in config order (one without a config file). */
  idps: DemoIdp[]
  stop(): Promise<void>
}

const CLIENT_ID = 'bff-demo'
const API_CLIENT_ID = 'demo-api'

export interface DemoPartsOptions {
  /**
   * Whether the config file has the live feed's WebSocket route (`/live/`). Workers do not relay
   * WebSockets yet, and refuse a config with such a route (500 `invalid_config`): `npm run
   * dev:worker` and the workerd browser tests leave it out.
   * @default true
   */
  liveFeed?: boolean
}

export async function startDemoParts(
  baseUrl: string,
  given: Readonly<Record<string, string | undefined>> = {},
  { liveFeed = true }: DemoPartsOptions = {}
): Promise<DemoParts> {
  // With BFF_API given the BFF takes its IdP from the environment: one IdP, at the paths of the
  // env-only setup (/bff/callback, /bff/backchannel), with its roles in a claim named `roles`,
  // as the BFF reads it without a mapping.
  const single = Boolean(given.BFF_API)
  const profile = given.BFF_DEMO_PROFILE?.trim() || undefined
  if (profile !== undefined && !(DEMO_PROFILES as readonly string[]).includes(profile)) {
    throw new TypeError(`BFF_DEMO_PROFILE must be ${DEMO_PROFILES.join(' or ')}, or unset`)
  }
  const fapi = profile === 'fapi2'
  const specs = single
    ? [{ ...DEMO_IDPS[0]!, accountClaims: { roles: [DEMO_ADMIN_ROLE] }, claims: {} }]
    : DEMO_IDPS
  const apiSecret = randomBytes(24).toString('base64url')
  const idps: DemoIdp[] = []
  const stopAll = async () => {
    for (const { idp } of idps.splice(0).reverse()) await idp.stop()
  }
  try {
    for (const spec of specs) {
      const path = single ? '' : `/${spec.name}`
      const credentials = fapi ? fapiCredentials() : secretCredentials()
      const idp = await startIdp({
        port: 0,
        extraProfileClaims: spec.accountClaims,
        ...(fapi ? { par: 'required', dpopNonce: true, fapi: true } : {}),
        clients: [
          {
            client_id: CLIENT_ID,
            ...credentials.metadata,
            redirect_uris: [`${baseUrl}/bff/callback${path}`],
            client_name: DEMO_APP_NAME,
            post_logout_redirect_uris: [`${baseUrl}/`, `${baseUrl}/logged-out.html`],
            backchannel_logout_uri: `${baseUrl}/bff/backchannel${path}`,
            // Client credentials for the service route below: the BFF's own token.
            grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
          },
          // The demo API introspects each IdP's tokens as a client of its own.
          apiClientMetadata(API_CLIENT_ID, apiSecret),
        ],
      })
      idps.push({
        name: spec.name,
        label: spec.label,
        idp,
        clientId: CLIENT_ID,
        ...credentials.bff,
      })
    }
  } catch (error) {
    await stopAll()
    throw error
  }

  const api = await startDemoApi({
    port: 0,
    introspect: idps.map(({ idp }) => ({
      issuer: idp.issuer,
      clientId: API_CLIENT_ID,
      clientSecret: apiSecret,
    })),
  }).catch(async (error: unknown) => {
    await stopAll()
    throw error
  })
  const routes = [
    // The admin area needs a second factor: without it the BFF answers step_up_required itself,
    // and the demo API, behind it, would ask for it too (an RFC 9470 challenge of its own).
    // `roles` is the normalised claim: realm_access.roles at Corp, groups at Partner.
    {
      prefix: '/api/admin/',
      upstream: `${api.url}/admin/`,
      require: { roles: DEMO_ADMIN_ROLE },
      acr: ADMIN_ACR,
    },
    // A public catalogue: no session needed, and no token ever sent.
    { prefix: '/api/catalog/', upstream: `${api.url}/catalog/`, token: 'none' },
    // A service route: the demo API gets the BFF's own client-credentials token (from the first
    // IdP), no user needed.
    { prefix: '/api/service/', upstream: `${api.url}/`, token: 'client' },
    // The live feed: a WebSocket the BFF relays with the user's token on the upgrade, closed
    // (1008) when the session ends. (The SSE ticker is /api/ticker, an ordinary API call.)
    ...(liveFeed ? [{ prefix: '/live/', upstream: `${api.url}/live/`, websocket: true }] : []),
    { prefix: '/api/', upstream: `${api.url}/` },
  ]
  const fileIdps = Object.fromEntries(
    idps.map(({ name, label, idp, clientId, clientSecret, clientKey }, i) => [
      name,
      {
        issuer: idp.issuer,
        clientId,
        ...(clientKey ? { clientKey, profile: 'fapi2' } : { clientSecret }),
        label,
        claims: specs[i]!.claims,
      },
    ])
  )
  // A file's `idps` replace BFF_ISSUER, BFF_CLIENT_ID, BFF_CLIENT_SECRET and the rest (setting
  // both is an error), so those are only set for the single IdP.
  const [first] = idps
  const envIdp: Record<string, string> = single
    ? {
        BFF_ISSUER: first!.idp.issuer,
        BFF_CLIENT_ID: first!.clientId,
        ...(first!.clientKey
          ? { BFF_CLIENT_KEY: JSON.stringify(first!.clientKey), BFF_PROFILE: 'fapi2' }
          : { BFF_CLIENT_SECRET: first!.clientSecret! }),
      }
    : {}
  return {
    ...(single ? {} : { configFile: JSON.stringify({ idps: fileIdps, routes }) }),
    settings: {
      ...envIdp,
      BFF_BASE_URL: baseUrl,
      BFF_SESSION_SECRET: given.BFF_SESSION_SECRET ?? randomBytes(32).toString('base64url'),
      ...(single ? { BFF_API: given.BFF_API! } : {}),
      BFF_POST_LOGOUT_REDIRECT: given.BFF_POST_LOGOUT_REDIRECT ?? '/logged-out.html',
    },
    idps,
    async stop() {
      await api.stop()
      await stopAll()
    },
  }
}

/** A client secret, as the IdP registers it and as the BFF is given it. */
function secretCredentials() {
  const clientSecret = randomBytes(24).toString('base64url')
  return { metadata: { client_secret: clientSecret }, bff: { clientSecret } }
}

/**
 * FAPI 2.0: the BFF signs client assertions with a fresh ES256 key, whose public half the IdP
 * registers; its access tokens must be DPoP-bound.
 */
function fapiCredentials() {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const kid = randomBytes(8).toString('hex')
  return {
    metadata: {
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, use: 'sig' }] },
      dpop_bound_access_tokens: true,
    },
    bff: { clientKey: { ...privateKey.export({ format: 'jwk' }), kid } as JsonWebKey },
  }
}
