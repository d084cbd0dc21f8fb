/**
 * Settings: `BFF_*` variables (Node's environment, a Workers `[vars]` block or secrets) and the
 * config file (`BFF_CONFIG`) turned into one frozen, typed `Config`, by the same rules as
 * `createBff`'s options (resolve.ts). Every bad key is reported at once, each on its own line that
 * names the setting, so an operator fixes a deployment in one round trip. Settings only a runtime
 * reads (PORT, Redis, bindings) are its adapter's: src/adapters/node/settings.ts and
 * src/adapters/workers/settings.ts.
 */
import { fileProblem, jsonPath, readConfigFile } from './file.ts'
import { ConfigError, type BffOptions, type Config, type SessionStoreKind } from './options.ts'
import { checkOptions, type OptionsInput } from './resolve.ts'
import type { Path } from './routes.ts'

export {
  ConfigError,
  type ApiRoute,
  type BffOptions,
  type ClientAuthMethod,
  type Config,
  type IdpConfig,
  type IdpOptions,
  type RouteOptions,
  type SessionStoreKind,
} from './options.ts'

/** Raw settings as a runtime hands them over: env vars or Workers bindings. */
export type Env = Readonly<Record<string, string | undefined>>

/** What the runtime adds to the environment: its defaults and the config file. */
export interface FromEnvOptions {
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

/** The older name of `FromEnvOptions`. */
export type ConfigDefaults = FromEnvOptions

/** Options only the config file's IdP entry gives: they have no `BFF_*` setting. */
type FileOnly = 'idpName' | 'claims' | 'idps'

/** The setting of each option. */
const SETTINGS: Record<Exclude<keyof BffOptions, FileOnly>, string> = {
  issuer: 'BFF_ISSUER',
  clientId: 'BFF_CLIENT_ID',
  clientSecret: 'BFF_CLIENT_SECRET',
  clientAuth: 'BFF_CLIENT_AUTH',
  clientKey: 'BFF_CLIENT_KEY',
  par: 'BFF_PAR',
  dpop: 'BFF_DPOP',
  profile: 'BFF_PROFILE',
  baseUrl: 'BFF_BASE_URL',
  sessionSecret: 'BFF_SESSION_SECRET',
  scopes: 'BFF_SCOPES',
  routes: 'BFF_API',
  sessionStore: 'BFF_SESSION_STORE',
  postLogoutRedirect: 'BFF_POST_LOGOUT_REDIRECT',
  refreshSkewSeconds: 'BFF_REFRESH_SKEW',
  sessionLifetimeSeconds: 'BFF_SESSION_LIFETIME',
  idleTimeoutSeconds: 'BFF_IDLE_TIMEOUT',
  upstreamTimeoutSeconds: 'BFF_UPSTREAM_TIMEOUT',
  idpTimeoutSeconds: 'BFF_IDP_TIMEOUT',
  adminToken: 'BFF_ADMIN_TOKEN',
  metricsToken: 'BFF_METRICS_TOKEN',
  cookieMaxBytes: 'BFF_COOKIE_MAX_BYTES',
  cookieTotalBytes: 'BFF_COOKIE_TOTAL_BYTES',
  liveMaxPerSession: 'BFF_LIVE_MAX_PER_SESSION',
  liveMaxPerInstance: 'BFF_LIVE_MAX',
}

/** The options a file's IdP entry gives, replacing their settings (and `routes`, `BFF_API`). */
const IDP_OPTIONS = [
  'issuer',
  'clientId',
  'clientSecret',
  'clientKey',
  'par',
  'dpop',
  'profile',
  'scopes',
] as const
const NUMBERS = [
  'refreshSkewSeconds',
  'sessionLifetimeSeconds',
  'idleTimeoutSeconds',
  'upstreamTimeoutSeconds',
  'idpTimeoutSeconds',
  'cookieMaxBytes',
  'cookieTotalBytes',
  'liveMaxPerSession',
  'liveMaxPerInstance',
] as const

/**
 * `BFF_*` settings (and the config file) into a frozen `Config`, which `createBff` takes as its
 * options.
 * @throws ConfigError listing every bad or missing setting, one per line.
 */
export function optionsFromEnv(env: Env, defaults: FromEnvOptions = {}): Config {
  const problems: string[] = []
  const get = (name: string) => {
    const value = env[name]?.trim()
    return value ? value : undefined
  }

  const fromFile =
    defaults.configFile === undefined ? undefined : readConfigFile(defaults.configFile, env)
  problems.push(...(fromFile?.problems ?? []))
  // A file value with a missing `${NAME}` is reported once, as that.
  const unresolved = new Set([...(fromFile?.unresolved ?? [])].map((path) => `BFF_CONFIG ${path}:`))
  const file = fromFile?.file
  // Keys the file sets, even with a bad value: then the settings they replace are not required.
  const fileHasIdps = fromFile?.keys.includes('idps') ?? false
  const fileHasRoutes = fromFile?.keys.includes('routes') ?? false
  // One place for each: a setting the file overrides silently would be a trap.
  const both = (key: string, options: readonly (keyof typeof SETTINGS)[]) => {
    const set = options.map((option) => SETTINGS[option]).filter((name) => get(name) !== undefined)
    if (set.length) problems.push(fileProblem(key, `and ${set.join(', ')} are both set: keep one`))
  }
  if (fileHasIdps) both('idps', IDP_OPTIONS)
  if (fileHasRoutes) both('routes', ['routes'])

  // The IdPs: the file's (a broken `idps` is reported above, not as missing settings), or the
  // one of the environment. BFF_CLIENT_AUTH is the default of a file IdP without `clientAuth`.
  const clientAuth = get(SETTINGS.clientAuth)
  const fileIdps = file?.idps
    ? Object.fromEntries(
        Object.entries(file.idps).map(([name, idp]) => [name, { clientAuth, ...idp }])
      )
    : {}
  const text = (value: unknown) => (typeof value === 'string' ? value.trim() : value)

  const input: Record<string, unknown> = fileHasIdps
    ? { idps: fileIdps }
    : {
        issuer: text(get(SETTINGS.issuer)),
        clientId: text(get(SETTINGS.clientId)),
        clientSecret: text(get(SETTINGS.clientSecret)),
        clientKey: get(SETTINGS.clientKey),
        par: flagOf(get(SETTINGS.par)),
        dpop: flagOf(get(SETTINGS.dpop)),
        profile: get(SETTINGS.profile),
        scopes: get(SETTINGS.scopes),
        clientAuth,
      }
  Object.assign(input, {
    baseUrl: get('BFF_BASE_URL') ?? defaults.baseUrl,
    sessionSecret: get('BFF_SESSION_SECRET')?.split(','),
    routes: fileHasRoutes ? (file?.routes ?? []) : apiRoutes(get('BFF_API'), problems),
    sessionStore: get('BFF_SESSION_STORE') ?? defaults.sessionStore,
  })
  for (const option of ['postLogoutRedirect', 'adminToken', 'metricsToken'] as const) {
    input[option] = get(SETTINGS[option])
  }
  for (const option of NUMBERS) {
    const raw = get(SETTINGS[option])
    // A number where it reads as one; otherwise the text, quoted in the problem as written.
    input[option] = raw !== undefined && Number.isFinite(Number(raw)) ? Number(raw) : raw
  }

  // Each problem under the name the operator wrote it as: the setting, or the file's JSON path.
  const nameOf = (path: Path): string | undefined => {
    const option = path[0] as keyof BffOptions
    if (option === 'idps') {
      // Only what the file holds: BFF_CLIENT_AUTH, when the entry has no clientAuth of its own.
      const [, name, key] = path
      const own = file?.idps?.[String(name)]
      if (key === 'clientAuth' && own && own.clientAuth === undefined) return SETTINGS.clientAuth
      return file ? `BFF_CONFIG ${jsonPath(path)}:` : undefined
    }
    if (fileHasRoutes && option === 'routes') return `BFF_CONFIG ${jsonPath(path)}:`
    return SETTINGS[option as Exclude<keyof BffOptions, FileOnly>]
  }
  const config = checkOptions(input as OptionsInput, (path, why) => {
    const name = nameOf(path)
    if (name !== undefined && !unresolved.has(name)) problems.push(`${name} ${why}`)
  })
  if (!config || problems.length > 0) throw new ConfigError(problems)
  return config
}

/**
 * The older name of `optionsFromEnv`, kept so code written against it keeps working.
 * @throws ConfigError listing every bad or missing setting, one per line.
 */
export const parseConfig: (env: Env, defaults?: FromEnvOptions) => Config = optionsFromEnv

/** `true` or `false` as a boolean; anything else stays text, quoted in the problem as written. */
function flagOf(raw: string | undefined): boolean | string | undefined {
  if (raw === 'true') return true
  if (raw === 'false') return false
  return raw
}

/**
 * `BFF_API`: comma-separated `prefix=upstream` pairs, e.g. `/api/=http://127.0.0.1:4000/`, as
 * `routes` entries; an entry of another shape is a problem of its own.
 */
function apiRoutes(raw: string | undefined, problems: string[]) {
  const routes: Array<{ prefix: string; upstream: string }> = []
  for (const entry of (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const at = entry.indexOf('=')
    const prefix = at > 0 ? entry.slice(0, at).trim() : ''
    const upstream = at > 0 ? entry.slice(at + 1).trim() : ''
    if (prefix && upstream) routes.push({ prefix, upstream })
    else problems.push(`BFF_API entry "${entry}" must look like /prefix/=https://upstream.example/`)
  }
  return routes
}
