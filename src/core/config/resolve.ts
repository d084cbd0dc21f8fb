/**
 * The rules of the options, in one place for every source: `createBff`'s hand-written options and
 * the `BFF_*` settings (env.ts) are checked by the same code and resolved to the same frozen
 * `Config`. Every problem is reported, each under the name its source uses (`"clientId"`,
 * `BFF_CLIENT_ID`, `BFF_CONFIG idps.corp.clientId:`), so a mistake is fixed in one round trip.
 */
import { jsonPath } from './file.ts'
import { checkRouteIdps, IDP_KEYS, idpsOf } from './idp-options.ts'
import { ConfigError, type BffOptions, type Config, type SessionStoreKind } from './options.ts'
import { checkRoutes, parseUrl, type Report } from './routes.ts'
import { isLoopback, oneOf, urlText } from './values.ts'

/** The options as they arrive, each value still unchecked: JavaScript callers, settings' strings. */
export type OptionsInput = { readonly [K in keyof BffOptions]?: unknown }

/** Every option by name; a `Record` so that TypeScript notices one added to `BffOptions` only. */
const KNOWN: Record<keyof BffOptions, true> = {
  issuer: true,
  clientId: true,
  clientSecret: true,
  clientAuth: true,
  clientKey: true,
  par: true,
  dpop: true,
  profile: true,
  baseUrl: true,
  sessionSecret: true,
  scopes: true,
  routes: true,
  sessionStore: true,
  postLogoutRedirect: true,
  refreshSkewSeconds: true,
  sessionLifetimeSeconds: true,
  idleTimeoutSeconds: true,
  upstreamTimeoutSeconds: true,
  idpTimeoutSeconds: true,
  adminToken: true,
  metricsToken: true,
  cookieMaxBytes: true,
  cookieTotalBytes: true,
  liveMaxPerSession: true,
  liveMaxPerInstance: true,
  idpName: true,
  claims: true,
  idps: true,
}

const STORE_KINDS: readonly SessionStoreKind[] = ['cookie', 'memory', 'redis', 'durable-object']
const MIN_SECRET_LENGTH = 32
// Timers hold at most 2^31 ms (~24 days, longer ones fire at once); an hour is a generous ceiling.
const MAX_TIMEOUT_SECONDS = 3600

/**
 * `createBff`'s options (or an already resolved `Config`) resolved once: defaults applied, every
 * rule checked, frozen.
 * @throws ConfigError naming each bad option, e.g. `"clientId" must be a non-empty string`.
 */
export function resolveOptions(options: BffOptions | Config): Config {
  if (typeof options !== 'object' || options === null) {
    throw new ConfigError(['options must be an object'])
  }
  const input = isConfig(options) ? optionsOf(options) : (options as OptionsInput)
  const problems: string[] = []
  for (const key of Object.keys(input)) {
    // A typo would otherwise fall back to the default without a word.
    if (!Object.hasOwn(KNOWN, key)) {
      problems.push(`"${key}" is not a known option`)
    }
  }
  const config = checkOptions(input, (path, why) => problems.push(`"${jsonPath(path)}" ${why}`))
  if (!config || problems.length) throw new ConfigError(problems)
  return config
}

/**
 * Checks every option, reporting each problem at its path; the resolved `Config`, or undefined
 * when anything was reported.
 */
export function checkOptions(input: OptionsInput, report: Report): Config | undefined {
  let ok = true
  const bad: Report = (path, why) => {
    ok = false
    report(path, why)
  }
  const at =
    (key: keyof BffOptions) =>
    (why: string): void =>
      bad([key], why)

  const idps = idpsOf(input, bad)

  const baseText = urlText(input.baseUrl)
  const base = parseUrl(baseText, at('baseUrl'), { required: true })
  if (base && (base.pathname !== '/' || base.search || base.hash)) {
    bad(['baseUrl'], `must be an origin without path, query or fragment, got "${baseText}"`)
  }
  // On plain http the cookies lose Secure and the __Host- prefix, so anyone on the network reads
  // them and a sibling subdomain can plant or shadow them: only this machine may go without TLS.
  if (base && base.protocol === 'http:' && !isLoopback(base.hostname)) {
    bad(['baseUrl'], `must use https (http is allowed only on localhost), got "${baseText}"`)
  }

  const sessionSecrets = secretsOf(input.sessionSecret, at('sessionSecret'))
  const api = checkRoutes(input.routes, bad)
  const sessionStore = oneOf(input.sessionStore, 'cookie', STORE_KINDS, at('sessionStore'))

  const postLogoutRedirect = input.postLogoutRedirect ?? '/'
  if (typeof postLogoutRedirect !== 'string' || !isRelativePath(postLogoutRedirect)) {
    bad(
      ['postLogoutRedirect'],
      `must be a relative path starting with "/", got "${String(postLogoutRedirect)}"`
    )
  }

  const number = (
    key: keyof BffOptions,
    fallback: number,
    min = 0,
    unit = 'seconds',
    max = Infinity
  ) => numberOf(input[key], fallback, at(key), min, unit, max)
  const refreshSkewSeconds = number('refreshSkewSeconds', 30)
  const sessionLifetimeSeconds = number('sessionLifetimeSeconds', 12 * 3600, 60)
  const idleTimeoutSeconds = number('idleTimeoutSeconds', 30 * 60, 60)
  const upstreamTimeoutSeconds = number(
    'upstreamTimeoutSeconds',
    30,
    0.001,
    'seconds',
    MAX_TIMEOUT_SECONDS
  )
  const idpTimeoutSeconds = number('idpTimeoutSeconds', 10, 1, 'seconds', MAX_TIMEOUT_SECONDS)
  // Browsers refuse cookies over 4096 bytes and many servers headers over 8 KB: stay below both.
  const cookieMaxBytes = number('cookieMaxBytes', 3584, 512, 'bytes')
  const cookieTotalBytes = number('cookieTotalBytes', 8192, cookieMaxBytes, 'bytes')
  if (cookieMaxBytes > 4096) bad(['cookieMaxBytes'], "must be at most 4096, the browsers' limit")
  // Live connections: counts, so whole numbers.
  const liveMaxPerSession = number('liveMaxPerSession', 16, 1, 'connections', 1000)
  const liveMaxPerInstance = number('liveMaxPerInstance', 20_000, 1, 'connections', 1_000_000)
  for (const key of ['liveMaxPerSession', 'liveMaxPerInstance'] as const) {
    const value = input[key]
    if (typeof value === 'number' && Number.isFinite(value) && !Number.isInteger(value)) {
      bad([key], `must be a whole number, got "${value}"`)
    }
  }

  // Bearer tokens of the admin API and the metrics: as long as a secret, or absent.
  for (const key of ['adminToken', 'metricsToken'] as const) {
    const token = input[key]
    if (token !== undefined && (typeof token !== 'string' || token.length < MIN_SECRET_LENGTH)) {
      bad([key], `must be at least ${MIN_SECRET_LENGTH} characters when set`)
    }
  }

  if (idps) {
    checkRouteIdps(
      input.routes,
      idps.map((idp) => idp.name),
      bad
    )
  }

  if (!ok) return undefined
  const [first] = idps!
  return Object.freeze({
    issuer: first!.issuer,
    clientId: first!.clientId,
    clientSecret: first!.clientSecret,
    clientAuth: first!.clientAuth,
    ...(first!.clientKey ? { clientKey: first!.clientKey } : {}),
    par: first!.par,
    dpop: first!.dpop,
    ...(first!.profile ? { profile: first!.profile } : {}),
    baseUrl: base!.origin,
    sessionSecrets: Object.freeze(sessionSecrets),
    scopes: first!.scopes,
    api: Object.freeze(api),
    sessionStore,
    postLogoutRedirect: postLogoutRedirect as string,
    refreshSkewSeconds,
    sessionLifetimeSeconds,
    idleTimeoutSeconds,
    upstreamTimeoutMs: upstreamTimeoutSeconds * 1000,
    idpTimeoutSeconds,
    adminToken: input.adminToken as string | undefined,
    metricsToken: input.metricsToken as string | undefined,
    cookieMaxBytes,
    cookieTotalBytes,
    liveMaxPerSession,
    liveMaxPerInstance,
    idpName: first!.name,
    claims: first!.claims,
    idps: Object.freeze(idps!),
  })
}

/** A `Config` (from `optionsFromEnv`, or resolved before) rather than hand-written options. */
function isConfig(options: object): options is Config {
  return 'sessionSecrets' in options && 'api' in options
}

/** A `Config` back as options, to be checked again by the same rules (it passes: it did once). */
function optionsOf(config: Config): OptionsInput {
  const { sessionSecrets, api, upstreamTimeoutMs, idps, ...same } = config
  const options: OptionsInput = {
    ...same,
    sessionSecret: sessionSecrets,
    routes: api,
    upstreamTimeoutSeconds:
      typeof upstreamTimeoutMs === 'number' ? upstreamTimeoutMs / 1000 : upstreamTimeoutMs,
  }
  // The single IdP of the top-level options keeps its form (and `/bff/callback`); several stay
  // `idps`. A `Config` from before `idps` existed has the top-level form only.
  if (!Array.isArray(idps) || idps[0]?.callbackPath === '/bff/callback') return options
  const rest: Record<string, unknown> = { ...options }
  for (const key of [...IDP_KEYS, 'idpName'] as const) delete rest[key]
  return {
    ...rest,
    idps: Object.fromEntries(
      idps.map(({ name, callbackPath: _c, backchannelPath: _b, ...idp }) => [name, idp])
    ),
  }
}

/** One secret or a rotation list, each at least 32 characters; blank entries are dropped. */
function secretsOf(value: unknown, bad: (why: string) => void): string[] {
  const list: unknown = value === undefined ? [] : typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    bad('must be a string or an array of strings')
    return []
  }
  const secrets = (list as string[]).map((s) => s.trim()).filter(Boolean)
  if (secrets.length === 0) {
    bad(`is required: at least ${MIN_SECRET_LENGTH} random characters`)
    return []
  }
  const index = secrets.findIndex((s) => s.length < MIN_SECRET_LENGTH)
  if (index >= 0) {
    // Never echo the secret itself: say which entry is short and by how much.
    bad(
      `entry ${index + 1} is ${secrets[index]!.length} characters; each must be at least ${MIN_SECRET_LENGTH}`
    )
  }
  return secrets
}

function numberOf(
  value: unknown,
  fallback: number,
  bad: (why: string) => void,
  min: number,
  unit: string,
  max: number
): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    const range = max === Infinity ? `>= ${min}` : `from ${min} to ${max}`
    bad(`must be a number of ${unit} ${range}, got "${String(value)}"`)
    return fallback
  }
  return value
}

function isRelativePath(path: string): boolean {
  return path.startsWith('/') && !path.startsWith('//') && !/[\\\u0000-\u001f\u007f]/.test(path)
}
