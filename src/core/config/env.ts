/**
 * Settings: `BFF_*` variables (Node's environment, a Workers `[vars]` block or secrets) turned
 * into one frozen, typed `Config`. Every bad key is reported at once, each on its own line that
 * names the setting, so an operator fixes a deployment in one round trip.
 */
import { fileProblem, jsonPath, readConfigFile } from './file.ts'
import { fileRoutes, parseApiRoutes, parseUrl } from './routes.ts'

export type SessionStoreKind = 'cookie' | 'memory' | 'redis' | 'durable-object'

/** How the BFF authenticates to the IdP's token endpoint (RFC 6749 2.3.1). */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post'

export interface ApiRoute {
  /** Path prefix on the BFF, always starting and ending with `/`, e.g. `/api/`. */
  prefix: string
  /** Upstream base URL, always ending with `/`; the part of the path after `prefix` is appended. */
  upstream: URL
}

// Timers hold at most 2^31 ms (~24 days, longer ones fire at once); an hour is a generous ceiling.
const MAX_TIMEOUT_SECONDS = 3600

export interface Config {
  issuer: URL
  clientId: string
  clientSecret: string
  /**
   * Client authentication at the token endpoint. `client_secret_post` for IdPs that compare HTTP
   * Basic credentials without form-decoding them (Glewlwyd), so a secret with `-` or `+` fails.
   */
  clientAuth: ClientAuthMethod
  /** Public origin of the BFF (no trailing slash), e.g. `https://app.example.com`. */
  baseUrl: string
  /** Cookie sealing secrets; the first seals, all unseal. */
  sessionSecrets: readonly string[]
  scopes: string
  api: readonly ApiRoute[]
  sessionStore: SessionStoreKind
  redisUrl: string
  /** Prefix of every Redis key, so several BFFs (or tests) can share one Redis. */
  redisPrefix: string
  /** Relative path where the browser lands after logout. */
  postLogoutRedirect: string
  /**
   * Refresh the access token when it expires within this many seconds, but never earlier than half
   * its lifetime (see `refreshSkewFor` in tokens.ts).
   */
  refreshSkewSeconds: number
  /** Absolute session lifetime in seconds. */
  sessionLifetimeSeconds: number
  /** A session unused for this many seconds ends (sliding). */
  idleTimeoutSeconds: number
  /** How long one upstream API call may take before the BFF answers 504, in milliseconds. */
  upstreamTimeoutMs: number
  /** How long one call to the IdP may take, in seconds. */
  idpTimeoutSeconds: number
  /** Bearer token of the admin API; the API is off when absent. */
  adminToken?: string
  /** Most bytes one Set-Cookie line may have. */
  cookieMaxBytes: number
  /** Most bytes all Set-Cookie lines of one response may have together. */
  cookieTotalBytes: number
}

/** Raw settings as a runtime hands them over: env vars or Workers bindings. */
export type Env = Readonly<Record<string, string | undefined>>

export class ConfigError extends Error {
  readonly code = 'invalid_config'
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'))
    this.name = 'ConfigError'
  }
}

export interface ConfigDefaults {
  /** Used when `BFF_BASE_URL` is unset: Node passes `http://localhost:$PORT`. */
  baseUrl?: string
  /** Used when `BFF_SESSION_STORE` is unset: `cookie` on Node, `durable-object` on Workers. */
  sessionStore?: SessionStoreKind
  /**
   * The config file (`BFF_CONFIG`): its JSON text, or the parsed object a Workers `[vars]` table
   * gives. Its `idps` and `routes` replace the IdP and `BFF_API` settings.
   */
  configFile?: unknown
}

/** The settings a file's `idps` replaces, and `routes`. */
const IDP_SETTINGS = ['BFF_ISSUER', 'BFF_CLIENT_ID', 'BFF_CLIENT_SECRET', 'BFF_SCOPES']
const DEFAULT_SCOPES = 'openid profile email offline_access'

const STORE_KINDS: readonly SessionStoreKind[] = ['cookie', 'memory', 'redis', 'durable-object']
const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = [
  'client_secret_basic',
  'client_secret_post',
]
const MIN_SECRET_LENGTH = 32

/**
 * Parses `BFF_*` settings into a frozen `Config`.
 * @throws ConfigError listing every bad or missing setting, one per line.
 */
export function parseConfig(env: Env, defaults: ConfigDefaults = {}): Config {
  const problems: string[] = []
  // A file value with a missing `${NAME}` is reported once, as that.
  let unresolved: ReadonlySet<string> = new Set()
  const bad = (name: string, why: string) => {
    if (!unresolved.has(name)) problems.push(`${name} ${why}`)
  }
  const get = (name: string) => {
    const value = env[name]?.trim()
    return value ? value : undefined
  }

  const fromFile =
    defaults.configFile === undefined ? undefined : readConfigFile(defaults.configFile, env)
  problems.push(...(fromFile?.problems ?? []))
  unresolved = new Set([...(fromFile?.unresolved ?? [])].map((path) => `BFF_CONFIG ${path}:`))
  const file = fromFile?.file
  // Keys the file sets, even with a bad value: then the settings they replace are not required.
  const fileHasIdps = fromFile?.keys.includes('idps') ?? false
  const fileHasRoutes = fromFile?.keys.includes('routes') ?? false
  // One place for each: a setting the file overrides silently would be a trap.
  const both = (key: string, names: string[]) => {
    const set = names.filter((name) => get(name) !== undefined)
    if (set.length) problems.push(fileProblem(key, `and ${set.join(', ')} are both set: keep one`))
  }
  if (fileHasIdps) both('idps', IDP_SETTINGS)
  if (fileHasRoutes) both('routes', ['BFF_API'])

  // The IdP: from the file (its one entry; a broken `idps` is reported above, not as missing
  // settings), or from the environment.
  const [idpName, idp] = Object.entries(file?.idps ?? {})[0] ?? []
  const field = (key: string) => `BFF_CONFIG ${jsonPath(['idps', idpName, key])}:`
  const issuerName = idp ? field('issuer') : 'BFF_ISSUER'
  const issuer = fileHasIdps
    ? idp && parseUrl(idp.issuer.trim(), issuerName, bad, { required: true })
    : parseUrl(get('BFF_ISSUER'), issuerName, bad, { required: true })
  // Tokens and codes travel to the issuer: plain http is only acceptable on this machine.
  if (issuer && issuer.protocol === 'http:' && !isLoopback(issuer.hostname)) {
    bad(issuerName, `must use https (http is allowed only on localhost), got "${issuer.href}"`)
  }

  const clientId = (fileHasIdps ? idp?.clientId.trim() : get('BFF_CLIENT_ID')) ?? ''
  if (!clientId && !fileHasIdps)
    bad('BFF_CLIENT_ID', 'is required: the client id registered at the IdP')
  const clientSecret = (fileHasIdps ? idp?.clientSecret.trim() : get('BFF_CLIENT_SECRET')) ?? ''
  if (!clientSecret && !fileHasIdps)
    bad('BFF_CLIENT_SECRET', 'is required: the client secret registered at the IdP')
  if (idp && (!clientId || !clientSecret)) {
    // Only blanks, or a `${NAME}` that is empty: the schema saw a non-empty string.
    if (!clientId) bad(field('clientId'), 'must not be blank')
    if (!clientSecret) bad(field('clientSecret'), 'must not be blank')
  }

  const clientAuth = get('BFF_CLIENT_AUTH') ?? 'client_secret_basic'
  if (!CLIENT_AUTH_METHODS.includes(clientAuth as ClientAuthMethod)) {
    bad('BFF_CLIENT_AUTH', `must be one of ${CLIENT_AUTH_METHODS.join(', ')}, got "${clientAuth}"`)
  }

  const baseUrlRaw = get('BFF_BASE_URL') ?? defaults.baseUrl
  const base = parseUrl(baseUrlRaw, 'BFF_BASE_URL', bad, { required: true })
  if (base && (base.pathname !== '/' || base.search || base.hash)) {
    bad('BFF_BASE_URL', `must be an origin without path, query or fragment, got "${baseUrlRaw}"`)
  }
  // On plain http the cookies lose Secure and the __Host- prefix, so anyone on the network reads
  // them and a sibling subdomain can plant or shadow them: only this machine may go without TLS.
  if (base && base.protocol === 'http:' && !isLoopback(base.hostname)) {
    bad('BFF_BASE_URL', `must use https (http is allowed only on localhost), got "${baseUrlRaw}"`)
  }

  const sessionSecrets = (get('BFF_SESSION_SECRET') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (sessionSecrets.length === 0) {
    bad('BFF_SESSION_SECRET', `is required: at least ${MIN_SECRET_LENGTH} random characters`)
  } else if (sessionSecrets.some((s) => s.length < MIN_SECRET_LENGTH)) {
    // Never echo the secret itself: say which entry is short and by how much.
    const index = sessionSecrets.findIndex((s) => s.length < MIN_SECRET_LENGTH)
    bad(
      'BFF_SESSION_SECRET',
      `entry ${index + 1} is ${sessionSecrets[index]!.length} characters; each must be at least ${MIN_SECRET_LENGTH}`
    )
  }

  const idpScopes = Array.isArray(idp?.scopes) ? idp.scopes.join(' ') : idp?.scopes
  const scopes = ((fileHasIdps ? idpScopes : get('BFF_SCOPES'))?.trim() || DEFAULT_SCOPES).replace(
    /\s+/g,
    ' '
  )
  if (!scopes.split(' ').includes('openid') && (idp || !fileHasIdps))
    bad(idp ? field('scopes') : 'BFF_SCOPES', `must include "openid", got "${scopes}"`)

  const api = fileHasRoutes
    ? fileRoutes(file?.routes ?? [], bad)
    : parseApiRoutes(get('BFF_API'), bad)

  const storeRaw = get('BFF_SESSION_STORE') ?? defaults.sessionStore ?? 'cookie'
  if (!STORE_KINDS.includes(storeRaw as SessionStoreKind)) {
    bad('BFF_SESSION_STORE', `must be one of ${STORE_KINDS.join(', ')}, got "${storeRaw}"`)
  }

  const redisUrl = get('BFF_REDIS_URL') ?? 'redis://127.0.0.1:6379'
  if (!/^rediss?:\/\//.test(redisUrl)) {
    // The value may carry a password: name the problem, never echo it.
    bad('BFF_REDIS_URL', 'must start with redis:// or rediss://')
  }

  const redisPrefix = get('BFF_REDIS_PREFIX') ?? 'bff:'
  if (!/^[\w:.-]{1,64}$/.test(redisPrefix)) {
    bad('BFF_REDIS_PREFIX', `must be 1-64 characters of letters, digits, ":", ".", "-" or "_"`)
  }

  const postLogoutRedirect = get('BFF_POST_LOGOUT_REDIRECT') ?? '/'
  if (!isRelativePath(postLogoutRedirect)) {
    bad(
      'BFF_POST_LOGOUT_REDIRECT',
      `must be a relative path starting with "/", got "${postLogoutRedirect}"`
    )
  }

  const refreshSkewSeconds = parseNumber(get('BFF_REFRESH_SKEW'), 'BFF_REFRESH_SKEW', 30, bad)
  const sessionLifetimeSeconds = parseNumber(
    get('BFF_SESSION_LIFETIME'),
    'BFF_SESSION_LIFETIME',
    12 * 3600,
    bad,
    60
  )
  const idleTimeoutSeconds = parseNumber(
    get('BFF_IDLE_TIMEOUT'),
    'BFF_IDLE_TIMEOUT',
    30 * 60,
    bad,
    60
  )
  const upstreamTimeoutMs =
    parseNumber(
      get('BFF_UPSTREAM_TIMEOUT'),
      'BFF_UPSTREAM_TIMEOUT',
      30,
      bad,
      0.001,
      'seconds',
      MAX_TIMEOUT_SECONDS
    ) * 1000
  const idpTimeoutSeconds = parseNumber(
    get('BFF_IDP_TIMEOUT'),
    'BFF_IDP_TIMEOUT',
    10,
    bad,
    1,
    'seconds',
    MAX_TIMEOUT_SECONDS
  )

  // Browsers refuse cookies over 4096 bytes and many servers headers over 8 KB: stay below both.
  const cookieMaxBytes = parseNumber(
    get('BFF_COOKIE_MAX_BYTES'),
    'BFF_COOKIE_MAX_BYTES',
    3584,
    bad,
    512,
    'bytes'
  )
  const cookieTotalBytes = parseNumber(
    get('BFF_COOKIE_TOTAL_BYTES'),
    'BFF_COOKIE_TOTAL_BYTES',
    8192,
    bad,
    cookieMaxBytes,
    'bytes'
  )
  if (cookieMaxBytes > 4096)
    bad('BFF_COOKIE_MAX_BYTES', "must be at most 4096, the browsers' limit")

  const adminToken = get('BFF_ADMIN_TOKEN')
  if (adminToken !== undefined && adminToken.length < MIN_SECRET_LENGTH) {
    bad('BFF_ADMIN_TOKEN', `must be at least ${MIN_SECRET_LENGTH} characters when set`)
  }

  if (problems.length > 0) throw new ConfigError(problems)

  return Object.freeze({
    issuer: issuer!,
    clientId,
    clientSecret,
    clientAuth: clientAuth as ClientAuthMethod,
    baseUrl: base!.origin,
    sessionSecrets: Object.freeze(sessionSecrets),
    scopes,
    api: Object.freeze(api),
    sessionStore: storeRaw as SessionStoreKind,
    redisUrl,
    redisPrefix,
    postLogoutRedirect,
    refreshSkewSeconds,
    sessionLifetimeSeconds,
    idleTimeoutSeconds,
    upstreamTimeoutMs,
    idpTimeoutSeconds,
    adminToken,
    cookieMaxBytes,
    cookieTotalBytes,
  })
}

type Report = (name: string, why: string) => void

function parseNumber(
  raw: string | undefined,
  name: string,
  fallback: number,
  bad: Report,
  min = 0,
  unit = 'seconds',
  max = Infinity
) {
  if (raw === undefined) return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max) {
    const range = max === Infinity ? `>= ${min}` : `from ${min} to ${max}`
    bad(name, `must be a number of ${unit} ${range}, got "${raw}"`)
    return fallback
  }
  return value
}

/** localhost, 127.0.0.0/8 or [::1] (as `URL.hostname` spells it). */
export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname)
}

function isRelativePath(path: string): boolean {
  return path.startsWith('/') && !path.startsWith('//') && !/[\\\u0000-\u001f\u007f]/.test(path)
}
