/**
 * The BFF's metrics (DESIGN "Observability"), their names and labels in one place, over the
 * registry of metrics.ts. Every label value is bounded by the configuration, never by requests:
 * `route` is a configured proxy prefix, `/bff/<name>` of a known endpoint, or `other` (never a raw
 * path); `method` a known method or `OTHER`; `idp` a configured IdP or `other`; `reason` an error
 * code; no user ids. Off (no `metricsToken`), `noMetrics` does nothing and no middleware times
 * requests: nothing of this runs on the hot path.
 */
import type { Config } from '../config/options.ts'
import { BffError } from '../errors.ts'
import { Registry, type CounterChild, type HistogramChild } from './metrics.ts'

export type LoginResult = 'success' | 'refused' | 'silent_failed' | 'step_up_failed' | 'error'
export type RefreshResult = 'success' | 'expired' | 'error'
export type LogoutKind = 'user' | 'backchannel' | 'admin'

const LOGIN_RESULTS: readonly LoginResult[] = [
  'success',
  'refused',
  'silent_failed',
  'step_up_failed',
  'error',
]
const REFRESH_RESULTS: readonly RefreshResult[] = ['success', 'expired', 'error']
const LOGOUT_KINDS: readonly LogoutKind[] = ['user', 'backchannel', 'admin']

/** The BFF's own endpoints, the `<name>` of `/bff/<name>` (the callback's IdP suffix dropped). */
const ENDPOINTS = [
  'login',
  'callback',
  'user',
  'logout',
  'health',
  'idps',
  'backchannel',
  'admin',
  'metrics',
  'events',
] as const
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const
const OTHER = 'other'

/** One request, as the metrics (and a runtime's own sink, e.g. Workers Analytics Engine) see it. */
export interface RequestPoint {
  /** The bounded route label. */
  route: string
  /** A known method or `OTHER`. */
  method: string
  status: number
  seconds: number
}

/** What a runtime adds to the metrics; `BffDeps.metrics`. */
export interface MetricsHooks {
  /** More exposition text for `/bff/metrics`, e.g. Node's process metrics from prom-client. */
  extra?(): Promise<string>
  /**
   * Each request's data point, also without `metricsToken`, e.g. to Workers Analytics Engine,
   * where isolates' counters cannot be added up.
   */
  request?(point: RequestPoint): void
}

export interface BffMetrics {
  /** Counting: `metricsToken` is set. */
  readonly enabled: boolean
  /** Timing requests: counting, or a runtime's `request` hook is given. */
  readonly timed: boolean
  request(path: string, method: string, status: number, seconds: number): void
  upstream(prefix: string, seconds: number): void
  login(idp: string | undefined, result: LoginResult): void
  refresh(idp: string | undefined, result: RefreshResult): void
  logout(kind: LogoutKind): void
  policyDenial(prefix: string, reason: string): void
  storeError(): void
  /** Counts what an error answer stands for: a CSRF refusal, a store that failed. */
  error(err: unknown): void
  /** Where `bff_live_connections` reads the live connections open now. */
  live(read: () => number): void
  /** The exposition text, the runtime's extra included. */
  render(): Promise<string>
}

const nothing = () => {}

/** Metrics off: every method does nothing. */
export const noMetrics: BffMetrics = {
  enabled: false,
  timed: false,
  request: nothing,
  upstream: nothing,
  login: nothing,
  refresh: nothing,
  logout: nothing,
  policyDenial: nothing,
  storeError: nothing,
  error: nothing,
  live: nothing,
  render: async () => '',
}

/** The series of one route label, made at start. */
interface RouteSeries {
  label: string
  duration: HistogramChild
  upstream: HistogramChild
  /** By method index (`OTHER` last), then status. */
  requests: Map<number, CounterChild>[]
}

/**
 * The metrics of one app: `noMetrics` unless `config.metricsToken` is set or `hooks.request` given.
 * `store` is the session store's kind, the `store` label.
 */
export function createMetrics(config: Config, store: string, hooks: MetricsHooks = {}): BffMetrics {
  const point = hooks.request
  if (!config.metricsToken && !point) return noMetrics
  const counting = Boolean(config.metricsToken)
  const registry = new Registry()
  const requests = registry.counter(
    'bff_http_requests_total',
    'Requests answered, by route (configured prefix or BFF endpoint), method and status.',
    ['route', 'method', 'status']
  )
  const duration = registry.histogram(
    'bff_http_request_duration_seconds',
    'Time from the request to the answer (its headers), by route.',
    ['route']
  )
  const upstream = registry.histogram(
    'bff_upstream_request_duration_seconds',
    "Time from sending a proxied call upstream to the upstream's answer (its headers), by route.",
    ['route']
  )
  const logins = registry.counter('bff_logins_total', 'Logins completed at the callback.', [
    'idp',
    'result',
  ])
  const refreshes = registry.counter(
    'bff_token_refreshes_total',
    'Refresh grants of sessions, by IdP and result.',
    ['idp', 'result']
  )
  const logouts = registry.counter('bff_logouts_total', 'Logouts by kind.', ['kind'])
  const csrf = registry.counter(
    'bff_csrf_rejections_total',
    'Requests refused for lack of X-CSRF or as cross-site.'
  )
  const denials = registry.counter(
    'bff_policy_denials_total',
    "Proxied calls refused by the route's policy, by route and reason.",
    ['route', 'reason']
  )
  const storeErrors = registry.counter(
    'bff_session_store_errors_total',
    'Session store operations that failed (answered 503 store_unavailable).',
    ['store']
  )

  let liveConnections = () => 0
  registry.gauge(
    'bff_live_connections',
    'Live connections (proxied WebSockets, /bff/events streams) this instance holds now.',
    () => liveConnections()
  )

  // Every series of a bounded label set made now, so each is 0 from the start (rate() needs it).
  const idpNames = [...config.idps.map((idp) => idp.name), OTHER]
  const byIdp = (counter: typeof logins, results: readonly string[]) =>
    new Map(
      idpNames.map((idp) => [
        idp,
        new Map(results.map((result) => [result, counter.labels(idp, result)])),
      ])
    )
  const loginSeries = byIdp(logins, LOGIN_RESULTS)
  const refreshSeries = byIdp(refreshes, REFRESH_RESULTS)
  const logoutSeries = new Map(LOGOUT_KINDS.map((kind) => [kind, logouts.labels(kind)]))
  const storeSeries = storeErrors.labels(store)
  const csrfSeries = csrf.labels()

  const routeSeries = (label: string): RouteSeries => ({
    label,
    duration: duration.labels(label),
    upstream: upstream.labels(label),
    requests: [...METHODS, 'OTHER'].map(() => new Map()),
  })
  const prefixes = config.api.map((route) => ({
    prefix: route.prefix,
    series: routeSeries(route.prefix),
  }))
  const byPrefix = new Map(prefixes.map((one) => [one.prefix, one.series]))
  const endpoints = new Map(ENDPOINTS.map((name) => [name, routeSeries(`/bff/${name}`)]))
  const other = routeSeries(OTHER)
  const methodIndex = new Map<string, number>(METHODS.map((method, i) => [method, i]))

  /** The path's route: longest configured prefix first (as the proxy matches), else an endpoint. */
  function routeOf(path: string): RouteSeries {
    if (path.startsWith('/bff/')) {
      const end = path.indexOf('/', 5)
      const name = path.slice(5, end === -1 ? undefined : end)
      return endpoints.get(name as (typeof ENDPOINTS)[number]) ?? other
    }
    for (const one of prefixes) if (path.startsWith(one.prefix)) return one.series
    return other
  }

  return {
    enabled: counting,
    timed: true,
    request(path, method, status, seconds) {
      const route = routeOf(path)
      const index = methodIndex.get(method) ?? METHODS.length
      if (counting) {
        const byStatus = route.requests[index]!
        let series = byStatus.get(status)
        if (!series) {
          series = requests.labels(route.label, METHODS[index] ?? 'OTHER', String(status))
          byStatus.set(status, series)
        }
        series.inc()
        route.duration.observe(seconds)
      }
      point?.({ route: route.label, method: METHODS[index] ?? 'OTHER', status, seconds })
    },
    upstream(prefix, seconds) {
      ;(byPrefix.get(prefix) ?? other).upstream.observe(seconds)
    },
    login(idp, result) {
      ;(loginSeries.get(idp ?? OTHER) ?? loginSeries.get(OTHER)!).get(result)!.inc()
    },
    refresh(idp, result) {
      ;(refreshSeries.get(idp ?? OTHER) ?? refreshSeries.get(OTHER)!).get(result)!.inc()
    },
    logout(kind) {
      logoutSeries.get(kind)!.inc()
    },
    policyDenial(prefix, reason) {
      // The route is a configured prefix and the reason an error code: bounded by the config.
      denials.labels(byPrefix.has(prefix) ? prefix : OTHER, reason).inc()
    },
    storeError() {
      storeSeries.inc()
    },
    error(err) {
      if (!(err instanceof BffError)) return
      if (err.code === 'csrf') csrfSeries.inc()
      else if (err.code === 'store_unavailable') storeSeries.inc()
    },
    live(read) {
      liveConnections = read
    },
    async render() {
      const extra = hooks.extra ? await hooks.extra() : ''
      return registry.render() + extra
    },
  }
}
