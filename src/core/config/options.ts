/**
 * The BFF's options: `BffOptions`, what a library user writes by hand for `createBff`, and
 * `Config`, the frozen form `createBff` resolves them to once (defaults applied, every rule
 * checked) and the rest of the core reads. `optionsFromEnv` (env.ts) builds a `Config` from the
 * `BFF_*` settings; resolve.ts holds the rules both share.
 */
import type { ClientKey } from './client-key.ts'

/**
 * Where sessions live. `cookie` and `memory` the core builds itself; `redis` (Node) and
 * `durable-object` (Workers) come from an adapter through `deps.store`.
 */
export type SessionStoreKind = 'cookie' | 'memory' | 'redis' | 'durable-object'

/**
 * How the BFF authenticates to the IdP's token endpoint (RFC 6749 2.3.1): with the client secret,
 * or with a client assertion signed by `clientKey` (RFC 7523).
 */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post' | 'private_key_jwt'

/**
 * A security profile an IdP's client follows: `fapi2`, the FAPI 2.0 Security Profile (PAR, PKCE
 * S256, the `iss` authorization response parameter, DPoP-bound tokens, `private_key_jwt` signed
 * with PS256, ES256 or EdDSA).
 */
export type SecurityProfile = 'fapi2'

/**
 * A private key of `private_key_jwt`: a JWK (object or JSON text) or PKCS#8 PEM text; a list
 * rotates (the first signs).
 */
export type ClientKeyOption =
  string | Readonly<JsonWebKey> | readonly (string | Readonly<JsonWebKey>)[]

/** One proxy route as written: calls under `prefix` go to `upstream` with the user's token. */
export interface RouteOptions {
  /**
   * Path prefix on the BFF: a plain path starting with `/`, not under `/bff`. A missing trailing
   * `/` is added, so `/api` never matches `/apifoo`.
   * @example '/api/'
   */
  prefix: string
  /**
   * Upstream base URL (http or https, no credentials, query or fragment); the part of the path
   * after `prefix` is appended to it.
   * @example 'https://orders.internal/v1/'
   */
  upstream: string | URL
  /**
   * Methods this route proxies; TRACE, CONNECT and WebDAV methods never. Others answer 405
   * `method_not_allowed` with `Allow`.
   * @default ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']
   */
  methods?: readonly string[]
  /**
   * Which token the upstream gets: `user` (a session is required), `optional` (the user's token
   * when there is a session), `none` (no token, no session needed), `client` (the BFF's own
   * client-credentials token), `exchange` (RFC 8693: the user's token exchanged for one for
   * `resource`).
   * @default 'user'
   */
  token?: TokenMode
  /** Only sessions from these IdPs (by name); others get 403 `forbidden`. @example ['corp'] */
  idps?: readonly string[]
  /**
   * Normalised claims the user must have: a string or boolean must equal the claim (or be in it,
   * when the claim is an array); an array means any of them. Else 403 `forbidden`.
   * @example { roles: 'admin', email_verified: true }
   */
  require?: Readonly<Record<string, ClaimRequirement>>
  /**
   * Scopes the token must carry (`user`/`exchange`: granted to the session, else 403
   * `insufficient_scope`); for `client`, the scopes requested. @example ['orders:read']
   */
  scopes?: readonly string[]
  /** Step-up: the session's `acr` must be one of these, else 401 `step_up_required`. @example 'mfa' */
  acr?: string | readonly string[]
  /** Step-up: the user must have authenticated within this many seconds. @example 300 */
  maxAge?: number
  /** RFC 8707 resource (audience) the token is for. @example 'https://orders.example' */
  resource?: string
  /** WebSocket upgrades allowed on this route. @default false */
  websocket?: boolean
  /** An external policy decision point (OPA's REST shape) asked before each call. */
  authorize?: { url: string | URL; cacheSeconds?: number }
  /**
   * Mutual TLS to the upstream: PEM texts (Node), or on Workers the name of an
   * `mtls_certificates` binding.
   */
  tls?: { cert?: string; key?: string; ca?: string; binding?: string }
}

/** What a route's upstream gets as its bearer token; see `RouteOptions.token`. */
export type TokenMode = 'user' | 'optional' | 'none' | 'client' | 'exchange'

/** A required claim value: equal (or contained, for array claims); an array means any of. */
export type ClaimRequirement = string | boolean | readonly (string | boolean)[]

/**
 * One OpenID Provider of several (`BffOptions.idps`): the same keys as the single-IdP options,
 * each IdP with its own client, scopes and claim shape.
 */
export interface IdpOptions {
  /** The IdP's issuer (https, or http on localhost only). @example 'https://login.corp.example' */
  issuer: string | URL
  /** Client id registered at this IdP. */
  clientId: string
  /** Client secret registered at this IdP; required unless `clientAuth` is `private_key_jwt`. */
  clientSecret?: string
  /** Client authentication at this IdP's token endpoint. @default 'client_secret_basic' */
  clientAuth?: ClientAuthMethod
  /** With `clientAuth: 'private_key_jwt'`: its private key(s); see `BffOptions.clientKey`. */
  clientKey?: ClientKeyOption
  /** Pushed authorization requests (RFC 9126) at this IdP; see `BffOptions.par`. @default false */
  par?: boolean
  /** DPoP-bound tokens (RFC 9449) from this IdP; see `BffOptions.dpop`. @default false */
  dpop?: boolean
  /** The security profile this IdP's client follows; see `BffOptions.profile`. */
  profile?: SecurityProfile
  /** Requested scopes; must include `openid`. @default 'openid profile email offline_access' */
  scopes?: string | readonly string[]
  /** Normalised claim name -> dot path into this IdP's claims. @example { roles: 'groups' } */
  claims?: Readonly<Record<string, string>>
  /** Shown on a login chooser (`GET /bff/idps`). @default the IdP's name */
  label?: string
}

/**
 * Options of `createBff(options, deps)`. Durations are in seconds, sizes in bytes. Every option
 * has a `BFF_*` setting of the same meaning (named on each), read by `optionsFromEnv(env)`.
 *
 * @example
 * createBff({
 *   issuer: 'https://login.example.com',
 *   clientId: 'bff',
 *   clientSecret: process.env.CLIENT_SECRET!,
 *   baseUrl: 'https://app.example.com',
 *   sessionSecret: process.env.SESSION_SECRET!,
 *   routes: [{ prefix: '/api/', upstream: 'https://api.internal/' }],
 * })
 */
export interface BffOptions {
  /**
   * Several IdPs by name (1 to 64 letters, digits, `-` or `_`), in the order a login chooser
   * shows them; the first is the default of `/bff/login`. Each IdP's redirect URI is
   * `baseUrl + '/bff/callback/<name>'` and its back-channel logout URI
   * `baseUrl + '/bff/backchannel/<name>'`. Replaces `issuer`, `clientId`, `clientSecret`,
   * `clientAuth`, `scopes`, `idpName` and `claims`, which must then be left out. From the config
   * file: its `idps`.
   * @example { corp: { issuer: 'https://login.corp.example', clientId: 'app', clientSecret } }
   */
  idps?: Readonly<Record<string, IdpOptions>>
  /**
   * The OpenID Provider's issuer; discovery reads `<issuer>/.well-known/openid-configuration`.
   * https, or http on localhost only (tokens and codes travel to it). `BFF_ISSUER`.
   * @example 'https://login.example.com/realms/main'
   */
  issuer?: string | URL
  /**
   * Client id registered at the IdP (a confidential client). `BFF_CLIENT_ID`.
   * @example 'bff'
   */
  clientId?: string
  /**
   * Client secret registered at the IdP; required unless `clientAuth` is `private_key_jwt` (and
   * then refused). `BFF_CLIENT_SECRET`.
   * @example process.env.CLIENT_SECRET
   */
  clientSecret?: string
  /**
   * Client authentication at the token endpoint. `client_secret_post` for IdPs that compare HTTP
   * Basic credentials without form-decoding them (Glewlwyd), so a secret with `-` or `+` fails.
   * `private_key_jwt` signs a client assertion with `clientKey` instead of sending a secret.
   * `BFF_CLIENT_AUTH`.
   * @default 'client_secret_basic'
   */
  clientAuth?: ClientAuthMethod
  /**
   * The private key of `private_key_jwt`: a private JWK (RSA, EC P-256/384/521 or Ed25519; an
   * object or its JSON text, or a JWK set's JSON) or PKCS#8 PEM text. A list rotates: the first
   * signs, register the public keys of all at the IdP. `BFF_CLIENT_KEY`.
   * @example process.env.CLIENT_KEY_PEM
   */
  clientKey?: ClientKeyOption
  /**
   * Pushed authorization requests (RFC 9126): the login's parameters go to the IdP directly and
   * the browser's URL holds only `client_id` and `request_uri`. Used anyway when the IdP's
   * discovery says `require_pushed_authorization_requests`. `BFF_PAR` (`true`/`false`).
   * @default false
   */
  par?: boolean
  /**
   * DPoP (RFC 9449): each session gets its own ES256 key pair, every token call carries a proof
   * signed with it, and upstream calls send `Authorization: DPoP <token>` with a fresh proof, so
   * a token copied out of a log is useless without the session's key. `BFF_DPOP` (`true`/`false`).
   * @default false
   */
  dpop?: boolean
  /**
   * `fapi2`: the client follows the FAPI 2.0 Security Profile. It turns on PAR, DPoP and
   * `private_key_jwt` (so `clientKey` is required), and refuses at start-up what breaks the profile:
   * `par: false`, `dpop: false`, a client secret, a `clientKey` signing with anything but PS256,
   * ES256 or EdDSA (an RSA key without `alg` signs PS256). At discovery the IdP must offer PAR, the
   * `iss` authorization response parameter and those algorithms, or its logins answer 503.
   * `BFF_PROFILE`.
   * @default undefined (no profile)
   */
  profile?: SecurityProfile
  /**
   * Public origin of the BFF, without path: cookies belong to it, the redirect URI is
   * `baseUrl + '/bff/callback'`. https, or http on localhost only. `BFF_BASE_URL`.
   * @example 'https://app.example.com'
   */
  baseUrl: string | URL
  /**
   * Cookie sealing secret, at least 32 characters; a list rotates keys (the first seals, all
   * unseal). `BFF_SESSION_SECRET` (comma-separated).
   * @example [process.env.SESSION_SECRET, process.env.OLD_SESSION_SECRET]
   */
  sessionSecret: string | readonly string[]
  /**
   * Requested scopes, a space-separated string or a list; must include `openid`. `BFF_SCOPES`.
   * @default 'openid profile email offline_access'
   */
  scopes?: string | readonly string[]
  /**
   * Proxy routes, matched longest prefix first. `BFF_API`, or the config file's `routes`.
   * @default []
   * @example [{ prefix: '/api/', upstream: 'https://api.internal/' }]
   */
  routes?: readonly RouteOptions[]
  /**
   * Where sessions live when `deps.store` is not given: `cookie` (sealed into the cookie) or
   * `memory` (this process only). Other stores come from an adapter in `deps.store`
   * (`redisStore` from `./redis`, `durableObjectStore` from `./workers`). `BFF_SESSION_STORE`.
   * @default 'cookie'
   */
  sessionStore?: 'cookie' | 'memory'
  /**
   * Relative path where the browser lands after logout. `BFF_POST_LOGOUT_REDIRECT`.
   * @default '/'
   */
  postLogoutRedirect?: string
  /**
   * Refresh the access token when it expires within this many seconds, but never earlier than
   * half its lifetime. `BFF_REFRESH_SKEW`.
   * @default 30
   */
  refreshSkewSeconds?: number
  /**
   * Absolute session lifetime in seconds, at least 60. `BFF_SESSION_LIFETIME`.
   * @default 43200 (12 hours)
   */
  sessionLifetimeSeconds?: number
  /**
   * A session unused for this many seconds ends (sliding), at least 60. `BFF_IDLE_TIMEOUT`.
   * @default 1800 (30 minutes)
   */
  idleTimeoutSeconds?: number
  /**
   * How long one upstream API call may take before the BFF answers 504, in seconds (0.001 to
   * 3600). `BFF_UPSTREAM_TIMEOUT`.
   * @default 30
   */
  upstreamTimeoutSeconds?: number
  /**
   * How long one call to the IdP may take, in seconds (1 to 3600). `BFF_IDP_TIMEOUT`.
   * @default 10
   */
  idpTimeoutSeconds?: number
  /**
   * Bearer token of the admin API, at least 32 characters; the API is off without it.
   * `BFF_ADMIN_TOKEN`.
   * @default undefined
   */
  adminToken?: string
  /**
   * Bearer token of `GET /bff/metrics` (Prometheus text), at least 32 characters; without it the
   * endpoint does not exist (404) and nothing is counted. `BFF_METRICS_TOKEN`.
   * @default undefined
   */
  metricsToken?: string
  /**
   * Most bytes one Set-Cookie line may have (512 to 4096, the browsers' limit); larger sessions
   * are split into chunks. `BFF_COOKIE_MAX_BYTES`.
   * @default 3584
   */
  cookieMaxBytes?: number
  /**
   * Most bytes all Set-Cookie lines of one response may have together, at least
   * `cookieMaxBytes` (many servers refuse headers over 8 KB). `BFF_COOKIE_TOTAL_BYTES`.
   * @default 8192
   */
  cookieTotalBytes?: number
  /**
   * Most live connections (proxied WebSockets and `/bff/events` streams) one session may hold on
   * one instance, 1 to 1000; past it a new one is refused with 429 `too_many_connections`.
   * `BFF_LIVE_MAX_PER_SESSION`.
   * @default 16
   */
  liveMaxPerSession?: number
  /**
   * Most live connections one instance (a Node process, a Workers isolate) holds in all, 1 to
   * 1 000 000; past it a new one is refused with 429 `too_many_connections`. `BFF_LIVE_MAX`.
   * @default 20000
   */
  liveMaxPerInstance?: number
  /**
   * The IdP's name: each session records it (`/bff/user` answers it as `idp`) and a route's `idps`
   * names it. 1 to 64 letters, digits, `-` or `_`. From the config file: the IdP's key in `idps`.
   * @default 'default'
   */
  idpName?: string
  /**
   * Normalised claim name -> dot path into the ID token / userinfo claims, e.g.
   * `{ roles: 'realm_access.roles' }`: routes' `require` and `/bff/user` use the names. A name
   * without a mapping is the claim of the same name. From the config file: the IdP's `claims`.
   * @default {}
   */
  claims?: Readonly<Record<string, string>>
}

/** A resolved route: both sides normalised to end with `/`. */
export interface ApiRoute {
  /** Path prefix on the BFF, always starting and ending with `/`, e.g. `/api/`. */
  prefix: string
  /** Upstream base URL, always ending with `/`; the part of the path after `prefix` is appended. */
  upstream: URL
  /** The route's policy, resolved; absent keys mean the defaults of `RouteOptions`. */
  methods?: ReadonlySet<string>
  token?: TokenMode
  idps?: readonly string[]
  require?: Readonly<Record<string, ClaimRequirement>>
  scopes?: readonly string[]
  acr?: readonly string[]
  maxAge?: number
  resource?: string
  websocket?: boolean
  authorize?: { url: URL; cacheSeconds: number }
  tls?: { cert?: string; key?: string; ca?: string; binding?: string }
}

/**
 * The options resolved: every default applied, every rule checked, frozen. Built by
 * `createBff` from `BffOptions`, or by `optionsFromEnv` from the `BFF_*` settings; `createBff`
 * takes either.
 */
export interface Config {
  issuer: URL
  clientId: string
  /** Absent with `private_key_jwt`. */
  clientSecret?: string
  clientAuth: ClientAuthMethod
  /** The first IdP's `private_key_jwt` keys; the first signs. */
  clientKey?: readonly ClientKey[]
  /** The first IdP's pushed authorization requests. */
  par?: boolean
  /** The first IdP's DPoP-bound tokens. */
  dpop?: boolean
  /** The first IdP's security profile. */
  profile?: SecurityProfile
  /** Public origin of the BFF (no trailing slash), e.g. `https://app.example.com`. */
  baseUrl: string
  /** Cookie sealing secrets; the first seals, all unseal. */
  sessionSecrets: readonly string[]
  /** Space-separated, including `openid`. */
  scopes: string
  /** The `routes`, sorted longest prefix first. */
  api: readonly ApiRoute[]
  sessionStore: SessionStoreKind
  postLogoutRedirect: string
  refreshSkewSeconds: number
  sessionLifetimeSeconds: number
  idleTimeoutSeconds: number
  /** `upstreamTimeoutSeconds` in milliseconds. */
  upstreamTimeoutMs: number
  idpTimeoutSeconds: number
  adminToken?: string
  metricsToken?: string
  cookieMaxBytes: number
  cookieTotalBytes: number
  liveMaxPerSession: number
  liveMaxPerInstance: number
  /** The first IdP's name, `default` for the one the `BFF_*` settings configure. */
  idpName: string
  /** The first IdP's claim mapping: normalised claim name -> dot path into the session's claims. */
  claims: Readonly<Record<string, string>>
  /**
   * Every IdP, in order; the first is the default and the one `issuer`, `clientId`, … above
   * describe.
   */
  idps: readonly IdpConfig[]
}

/** One IdP, resolved. */
export interface IdpConfig {
  /** `default` for the IdP of the `BFF_*` settings (or the top-level options). */
  name: string
  /** For a login chooser; the name when none is given. */
  label: string
  issuer: URL
  clientId: string
  /** Absent with `private_key_jwt`. */
  clientSecret?: string
  clientAuth: ClientAuthMethod
  /** With `private_key_jwt`: JWK objects or PKCS#8 PEM texts, the first signs. */
  clientKey?: readonly ClientKey[]
  /** Pushed authorization requests always (else only when the IdP requires them). */
  par: boolean
  /** DPoP-bound tokens: a key pair per session, a proof on every token and upstream call. */
  dpop: boolean
  /** The security profile, when one is followed (its settings already applied above). */
  profile?: SecurityProfile
  /** Space-separated, including `openid`. */
  scopes: string
  /** Normalised claim name -> dot path into the session's claims. */
  claims: Readonly<Record<string, string>>
  /** `/bff/callback` for the single IdP of the top-level options, else `/bff/callback/<name>`. */
  callbackPath: string
  /** `/bff/backchannel`, or `/bff/backchannel/<name>` likewise. */
  backchannelPath: string
}

/** Bad options or settings: every problem at once, one line each, naming the option or setting. */
export class ConfigError extends Error {
  readonly code = 'invalid_config'
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'))
    this.name = 'ConfigError'
  }
}
