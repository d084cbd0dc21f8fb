/**
 * The rules of the options, in one place for every source: `createBff`'s hand-written options and
 * the `BFF_*` settings (env.ts) are checked by the same code and resolved to the same frozen
 * `Config`. Every problem is reported, each under the name its source uses (`"clientId"`,
 * `BFF_CLIENT_ID`, `BFF_CONFIG idps.corp.clientId:`), so a mistake is fixed in one round trip.
 */
import { clientKeysOf, type ClientKey } from './client-key.ts'
import { jsonPath } from './file.ts'
import {
  ConfigError,
  type BffOptions,
  type ClientAuthMethod,
  type Config,
  type IdpConfig,
  type SessionStoreKind,
} from './options.ts'
import { checkRoutes, parseUrl, type Report } from './routes.ts'
import { IDP_NAME } from './schema.ts'

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
  idpName: true,
  claims: true,
  idps: true,
}

/** The options one IdP has: top-level for the single IdP, or in each entry of `idps`. */
const IDP_KEYS = [
  'issuer',
  'clientId',
  'clientSecret',
  'clientAuth',
  'clientKey',
  'par',
  'dpop',
  'scopes',
  'claims',
] as const
/** What an entry of `idps` may hold. */
const IDP_ENTRY_KEYS: ReadonlySet<string> = new Set([...IDP_KEYS, 'label'])
const MAX_LABEL_LENGTH = 100

const DEFAULT_SCOPES = 'openid profile email offline_access'
const STORE_KINDS: readonly SessionStoreKind[] = ['cookie', 'memory', 'redis', 'durable-object']
const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = [
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
]
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
    idpName: first!.name,
    claims: first!.claims,
    idps: Object.freeze(idps!),
  })
}

/**
 * The IdPs: each entry of `idps`, or the single IdP of the top-level options (named `idpName`,
 * served at `/bff/callback`). Undefined when anything was wrong.
 */
function idpsOf(input: OptionsInput, bad: Report): IdpConfig[] | undefined {
  if (input.idps === undefined) {
    const name = input.idpName ?? 'default'
    const nameOk = typeof name === 'string' && IDP_NAME.test(name)
    if (!nameOk) bad(['idpName'], 'must be 1-64 letters, digits, "-" or "_"')
    const idp = idpOf(input, String(name), [], bad)
    if (!idp || !nameOk) return undefined
    return [{ ...idp, callbackPath: '/bff/callback', backchannelPath: '/bff/backchannel' }]
  }
  // One way to name the IdPs: a top-level key next to `idps` would be silently ignored.
  for (const key of [...IDP_KEYS, 'idpName'] as const) {
    if (input[key] !== undefined) bad([key], 'and "idps" are both set: keep one')
  }
  const entries = input.idps
  if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) {
    bad(['idps'], 'must be an object of IdPs by name')
    return undefined
  }
  const names = Object.keys(entries)
  if (names.length === 0) {
    bad(['idps'], 'must name an IdP')
    return undefined
  }
  let ok = true
  const idps: IdpConfig[] = []
  for (const name of names) {
    const entry = (entries as Record<string, unknown>)[name]
    if (!IDP_NAME.test(name)) {
      bad(['idps', name], 'is not a usable IdP name: 1-64 letters, digits, "-" or "_"')
      ok = false
      continue
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      bad(['idps', name], 'must be an object with issuer, clientId and clientSecret')
      ok = false
      continue
    }
    for (const key of Object.keys(entry)) {
      if (!IDP_ENTRY_KEYS.has(key)) {
        bad(['idps', name, key], 'is not a known option')
        ok = false
      }
    }
    const idp = idpOf(entry as OptionsInput & { label?: unknown }, name, ['idps', name], bad)
    if (!idp) ok = false
    else {
      idps.push({
        ...idp,
        callbackPath: `/bff/callback/${name}`,
        backchannelPath: `/bff/backchannel/${name}`,
      })
    }
  }
  return ok ? idps : undefined
}

/** One IdP's options checked, each problem reported under `path` + its key. */
function idpOf(
  input: OptionsInput & { label?: unknown },
  name: string,
  path: readonly (string | number)[],
  report: Report
): Omit<IdpConfig, 'callbackPath' | 'backchannelPath'> | undefined {
  let ok = true
  const bad: Report = (keys, why) => {
    ok = false
    report([...path, ...keys], why)
  }
  const at =
    (key: string) =>
    (why: string): void =>
      bad([key], why)
  const issuer = parseUrl(urlText(input.issuer), at('issuer'), { required: true })
  // Tokens and codes travel to the issuer: plain http is only acceptable on this machine.
  if (issuer && issuer.protocol === 'http:' && !isLoopback(issuer.hostname)) {
    bad(['issuer'], `must use https (http is allowed only on localhost), got "${issuer.href}"`)
  }
  const clientId = requiredText(
    input.clientId,
    at('clientId'),
    'the client id registered at the IdP'
  )
  const clientAuth = oneOf(
    input.clientAuth,
    'client_secret_basic',
    CLIENT_AUTH_METHODS,
    at('clientAuth')
  )
  const { clientSecret, clientKey } = clientCredentialsOf(input, clientAuth, bad)
  const par = input.par ?? false
  if (typeof par !== 'boolean') bad(['par'], 'must be true or false')
  const dpop = input.dpop ?? false
  if (typeof dpop !== 'boolean') bad(['dpop'], 'must be true or false')
  const scopes = scopesOf(input.scopes, at('scopes'))
  const claims = claimsOf(input.claims, bad)
  const label = input.label ?? name
  if (typeof label !== 'string' || !label.trim() || label.length > MAX_LABEL_LENGTH) {
    bad(['label'], `must be a non-empty string of at most ${MAX_LABEL_LENGTH} characters`)
  }
  if (!ok) return undefined
  return {
    name,
    label: (label as string).trim(),
    issuer: issuer!,
    clientId,
    clientSecret,
    clientAuth,
    ...(clientKey ? { clientKey: Object.freeze(clientKey) } : {}),
    par: par as boolean,
    dpop: dpop as boolean,
    scopes,
    claims,
  }
}

/**
 * The secret, or with `private_key_jwt` the key(s): each method needs its own credential and
 * refuses the other's, since a secret left next to a key would suggest it is still in use.
 */
function clientCredentialsOf(
  input: OptionsInput,
  clientAuth: ClientAuthMethod,
  bad: Report
): { clientSecret?: string; clientKey?: ClientKey[] } {
  if (clientAuth !== 'private_key_jwt') {
    if (input.clientKey !== undefined) {
      bad(['clientKey'], `is only used with "clientAuth": "private_key_jwt", not ${clientAuth}`)
    }
    const clientSecret = requiredText(
      input.clientSecret,
      (why) => bad(['clientSecret'], why),
      'the client secret registered at the IdP'
    )
    return { clientSecret }
  }
  if (input.clientSecret !== undefined) {
    bad(['clientSecret'], 'and "clientAuth": "private_key_jwt" are both set: keep clientKey only')
  }
  if (input.clientKey === undefined) {
    bad(
      ['clientKey'],
      'is required with "clientAuth": "private_key_jwt": the private key (JWK or PKCS#8 PEM)'
    )
    return {}
  }
  return { clientKey: clientKeysOf(input.clientKey, (why) => bad(['clientKey'], why)) }
}

/** A route's `idps` may only name configured IdPs: a typo would refuse every user for good. */
function checkRouteIdps(routes: unknown, names: readonly string[], bad: Report) {
  if (!Array.isArray(routes)) return
  routes.forEach((route: unknown, i) => {
    const idps = (route as { idps?: unknown } | null)?.idps
    if (!Array.isArray(idps)) return
    const unknown = idps.filter((name) => typeof name === 'string' && !names.includes(name))
    if (unknown.length) {
      bad(
        ['routes', i, 'idps'],
        `names IdPs that are not configured: ${unknown.join(', ')} (configured: ${names.join(', ')})`
      )
    }
  })
}

/** The claims map: normalised name -> a dot path (no empty segment), frozen. */
function claimsOf(value: unknown, bad: Report): Readonly<Record<string, string>> {
  if (value === undefined) return Object.freeze({})
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    bad(['claims'], 'must be an object of claim name -> dot path')
    return Object.freeze({})
  }
  const claims: Record<string, string> = {}
  for (const [name, path] of Object.entries(value)) {
    // "__proto__" would set the object's prototype rather than a key.
    if (!name.trim() || name === '__proto__') bad(['claims', name], 'is not a usable claim name')
    else if (typeof path !== 'string' || !path || path.split('.').some((part) => part === '')) {
      bad(['claims', name], 'must be a dot path into the claims, e.g. "realm_access.roles"')
    } else claims[name] = path
  }
  return Object.freeze(claims)
}

/** localhost, 127.0.0.0/8 or [::1] (as `URL.hostname` spells it). */
export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname)
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

function urlText(value: unknown): string | undefined {
  if (value instanceof URL) return value.href
  return typeof value === 'string' ? value.trim() : undefined
}

function requiredText(value: unknown, bad: (why: string) => void, what: string): string {
  if (value === undefined) {
    bad(`is required: ${what}`)
    return ''
  }
  if (typeof value !== 'string' || !value.trim()) {
    bad('must be a non-empty string')
    return ''
  }
  return value.trim()
}

function oneOf<T extends string>(
  value: unknown,
  fallback: T,
  choices: readonly T[],
  bad: (why: string) => void
): T {
  if (value === undefined) return fallback
  if (!choices.includes(value as T)) {
    bad(`must be one of ${choices.join(', ')}, got "${String(value)}"`)
    return fallback
  }
  return value as T
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

/** Space-separated, `openid` among them; a list is joined. */
function scopesOf(value: unknown, bad: (why: string) => void): string {
  if (
    value !== undefined &&
    typeof value !== 'string' &&
    !(Array.isArray(value) && value.every((s) => typeof s === 'string'))
  ) {
    bad('must be a string or an array of strings')
    return DEFAULT_SCOPES
  }
  const text = Array.isArray(value) ? value.join(' ') : (value as string | undefined)
  const scopes = (text?.trim() || DEFAULT_SCOPES).replace(/\s+/g, ' ')
  if (!scopes.split(' ').includes('openid')) bad(`must include "openid", got "${scopes}"`)
  return scopes
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
