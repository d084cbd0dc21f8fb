/**
 * The app builder: `createBff(options, deps)` resolves the options once (a mistake throws here,
 * never per request) and returns a Hono app with the `/bff/*` endpoints and the API proxy, ready
 * to serve on its own or be mounted in an existing Hono app. The library entry, src/index.ts,
 * re-exports it with the rest of the public API.
 */
import { Hono, type Context } from 'hono'
import { ConfigError, type BffOptions, type Config } from './config/options.ts'
import { resolveOptions } from './config/resolve.ts'
import { BffError } from './errors.ts'
import { canonicalHost } from './policy/canonical-host.ts'
import { auditTrail } from './observe/audit.ts'
import { createMetrics, type MetricsHooks } from './observe/bff-metrics.ts'
import { errorReason, jsonLogger, type Logger } from './observe/log.ts'
import { traceRequests, traceSessions } from './observe/spans.ts'
import type { Tracer } from './observe/trace.ts'
import { createIdpRegistry } from './oidc/idps.ts'
import { errorPage, PAGE_SECURITY_HEADERS, pageForError } from './pages.ts'
import { adminRoute } from './routes/admin.ts'
import { apiProxy } from './routes/api.ts'
import { backchannelRoute } from './routes/backchannel.ts'
import { callbackRoute } from './routes/callback.ts'
import { healthRoute } from './routes/health.ts'
import { idpsRoute } from './routes/idps.ts'
import { loginRoute } from './routes/login.ts'
import { logoutRoute } from './routes/logout.ts'
import { metricsRoute, timeRequests } from './routes/metrics.ts'
import { userRoute } from './routes/user.ts'
import type { BffEnv } from './hono-env.ts'
import { createSessionManager } from './session/manager.ts'
import { createSessionCookies, type Hmac } from './session/session-cookie.ts'
import { setCookieBytes } from './session/cookie.ts'
import { createSealer, type Iron } from './session/seal.ts'
import { cookieStore } from './session/stores/cookie.ts'
import { memoryStore } from './session/stores/memory.ts'
import type { SessionStore } from './session/types.ts'
import type { BffServices } from './services.ts'
import type { RefreshCoordinator } from './tokens/refresh-coordinator.ts'
import { createClientTokens } from './tokens/client-token.ts'
import type { SharedTokenCoordinator } from './tokens/shared-token.ts'
import { createTokenExchanges } from './tokens/exchange-token.ts'
import { createTokenManager } from './tokens/token-manager.ts'
import { policyPoint } from './policy/authorize.ts'
import { forward, type Forwarder } from './proxy/forward.ts'
import { upstreamTlsProblems } from './proxy/upstream-tls.ts'
import { unrequestedScopes } from './config/unrequested-scopes.ts'
import type { Upgrader } from './proxy/websocket.ts'
import { memoryReplayGuard, type ReplayGuard } from './oidc/replay-guard.ts'
import { createLiveSessions, inProcessBus, type SessionEndBus } from './session/live.ts'
import { sessionExpired } from './session/ends.ts'
import { eventsRoute } from './routes/events.ts'

export interface BffDeps {
  /**
   * The session store. Optional for `cookie` and `memory`, which the core builds itself; the
   * runtime entry must pass one for `redis` and `durable-object`.
   */
  store?: SessionStore
  /**
   * Makes each token refresh happen once across every instance sharing the sessions, e.g.
   * `redisRefreshCoordinator` (./redis) or the Durable Object one the Workers entry builds.
   * Default: single-flight within this process only, enough for one process.
   */
  refreshCoordinator?: RefreshCoordinator
  /**
   * Shares the BFF's client-credentials tokens (`client` routes) and each session's exchanged
   * tokens (`exchange` routes) across instances, one grant for all of them:
   * `redisSharedTokenCoordinator` (./redis) or the Durable Object one of the Workers entry.
   * Default: cached and single-flight within this process only.
   */
  sharedTokenCoordinator?: SharedTokenCoordinator
  /** fetch for calls to the IdP. Default: the global fetch. */
  fetch?: typeof fetch
  /** fetch for calls to the routes' policy decision points (`authorize`). Default: the global fetch. */
  pdpFetch?: typeof fetch
  /** fetch for upstream API calls. Default: the global fetch. */
  upstreamFetch?: typeof fetch
  /**
   * Sends proxied API calls upstream. Default: `forward` (src/core/proxy/forward.ts) over `upstreamFetch`.
   * The Node entry passes `nodeForward()` (src/adapters/node/upstream.ts): the same contract over
   * node:http.
   */
  forward?: Forwarder
  /**
   * Opens and relays the WebSockets of routes with `websocket: true` (core/proxy/websocket.ts
   * says what it must do). `startNode` passes the one of `nodeWebSockets()` (./node), whose
   * `attach(server, fetch)` hands it the server's upgrades; the Workers entry the one of
   * `workersWebSockets()` (./workers). Without it, such a route stops start-up.
   */
  upgrade?: Upgrader
  /** Clock in epoch milliseconds. Default: `Date.now`. */
  now?: () => number
  /**
   * Makes and opens iron seals (session cookies, login transactions). Default: iron-session over
   * WebCrypto. The Node entry passes `nodeIron` (./node): the same format through node:crypto.
   */
  iron?: Iron
  /**
   * HMAC-SHA256 for the session-id cookie's MAC (session/session-cookie.ts). Default: WebCrypto's.
   * The Node entry passes node:crypto's, several times faster.
   */
  hmac?: Hmac
  /** Where logout token `jti`s are remembered. Default: in memory (one instance only). */
  replay?: ReplayGuard
  /** Structured logger. Default: JSON lines on stdout. */
  log?: Logger
  /**
   * Records the BFF's spans (request, session load, refresh grant, upstream call). The Node entry
   * passes one over the OpenTelemetry SDK when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; `otelTracer`
   * (./node) adapts any OpenTelemetry tracer. Without one, upstream calls still carry a child
   * `traceparent` of the request's.
   */
  tracer?: Tracer
  /** The client's IP address, for X-Forwarded-For. */
  clientIp?: (c: Context) => string | undefined
  /**
   * A server's life (Node): given, the IdP's discovery is checked at once and retried in the
   * background (problems logged) until it works or this aborts. Workers discover on first use.
   */
  background?: AbortSignal
  /**
   * What the runtime adds to the metrics: the Node entry's process metrics (`extra`), the Workers
   * entry's Analytics Engine data points (`request`).
   */
  metrics?: MetricsHooks
  /**
   * Carries session ends to every instance, so each closes its live connections (WebSockets,
   * `/bff/events`) of an ended session: `redisSessionEndBus` (./redis) on Node. Default: within
   * this process only. Pass one whenever several instances share sessions: with the `cookie`
   * store, it also says that this instance does not see every request of a session, so an idle
   * deadline it cannot confirm sends `/bff/events` clients back to be checked rather than ending.
   */
  sessionEnds?: SessionEndBus
}

/**
 * The BFF as a Hono app. `options` are checked and their defaults applied here, once; a `Config`
 * from `optionsFromEnv(env)` is taken as well.
 * @throws ConfigError naming every bad option, e.g. `"clientId" must be a non-empty string`.
 */
export function createBff(options: BffOptions | Config, deps: BffDeps = {}): Hono<BffEnv> {
  const config = resolveOptions(options)
  const upstreamFetch: typeof fetch = deps.upstreamFetch ?? ((input, init) => fetch(input, init))
  const forwarder: Forwarder =
    deps.forward ??
    ((c, target, options) => forward(c.req.raw, target, { ...options, fetch: upstreamFetch }))
  // A route that asks for a client certificate never runs on a transport that sends none.
  const tlsProblems = upstreamTlsProblems(config.api, forwarder.tls)
  if (tlsProblems.length) throw new ConfigError(tlsProblems)
  // A route that takes WebSockets never runs where upgrades would be refused or mishandled.
  const socketRoutes = deps.upgrade ? [] : config.api.filter((route) => route.websocket)
  if (socketRoutes.length) {
    throw new ConfigError(
      socketRoutes.map(
        (route) =>
          `route "${route.prefix}": "websocket" needs a runtime that proxies WebSockets (Node: ` +
          'startNode, or nodeWebSockets() as deps.upgrade; Workers: workersWebSockets()); this ' +
          'one would refuse every upgrade'
      )
    )
  }
  const now = deps.now ?? Date.now
  const log = deps.log ?? jsonLogger
  // Not an error (an IdP may grant scopes unasked), but most often a route refusing everyone.
  for (const gap of unrequestedScopes(config)) {
    log('warn', 'config.scopes_not_requested', { ...gap, scopes: gap.scopes.join(' ') })
  }
  const store = deps.store ?? defaultStore(config, now)
  const sealer = createSealer(config.sessionSecrets, { now, iron: deps.iron })
  const idps = createIdpRegistry(config, { fetch: deps.fetch, now, log })
  const oidc = idps.first.oidc
  if (deps.background) for (const idp of idps.list) idp.oidc.checkAtStartup(deps.background)
  const metrics = createMetrics(config, store.kind, deps.metrics)
  const tokens = createTokenManager({
    oidc: idps.oidcFor,
    coordinator: deps.refreshCoordinator,
    skewSeconds: config.refreshSkewSeconds,
    now,
    onRefresh: (session, result) => metrics.refresh(idps.of(session)?.config.name, result),
    tracer: deps.tracer,
  })
  const clientIp = deps.clientIp ?? (() => undefined)
  const sessionEnds = deps.sessionEnds ?? inProcessBus()
  // Only the browser holds a `cookie` session: no store can say whether another instance slid it.
  // Alone, this instance sees every request of it, and knows.
  const cookieAlone = store.kind === 'cookie' && deps.sessionEnds === undefined
  const services: BffServices = {
    config,
    idps,
    oidc,
    sealer,
    log,
    audit: auditTrail({ log, clientIp, api: config.api }),
    metrics,
    now,
    sessionEnds,
    live: createLiveSessions({
      bus: sessionEnds,
      maxPerSession: config.liveMaxPerSession,
      maxPerInstance: config.liveMaxPerInstance,
      now,
      // The store knows best whether an idle session slid elsewhere; a `cookie` store cannot tell.
      recheck: async (session) => {
        const held = await store.get({ id: session.id })
        // In `cookie` mode only a session too large for the cookie is held on the server.
        if (held || store.kind !== 'cookie') return held
        return cookieAlone ? null : undefined
      },
      onExpired: (session, kind) => sessionExpired(services, undefined, session, kind),
    }),
    sessions: createSessionManager({
      store,
      sealer,
      baseUrl: config.baseUrl,
      idleTimeoutSeconds: config.idleTimeoutSeconds,
      newest: tokens.newest,
      budget: { maxCookieBytes: config.cookieMaxBytes, maxTotalBytes: config.cookieTotalBytes },
      policyClaims: policyClaims(config),
      cookies: createSessionCookies(sealer, config.sessionSecrets, { hmac: deps.hmac, now }),
      // A session of an IdP no longer configured has nowhere to refresh or log out: it has ended.
      belongs: (session) => idps.of(session) !== undefined,
      log,
      now,
      onExpired: (c, expired) =>
        sessionExpired(
          services,
          c,
          expired.session,
          expired.final ? 'absolute_lifetime' : 'idle_timeout'
        ),
      onWritten: (session) => services.live.touch(session),
    }),
    tokens,
    clientTokens: createClientTokens({
      oidc,
      // Client credentials are the first IdP's: its `dpop` says whether they carry proofs.
      dpop: config.dpop,
      coordinator: deps.sharedTokenCoordinator,
      skewSeconds: config.refreshSkewSeconds,
      now,
    }),
    exchanges: createTokenExchanges({
      oidc: idps.oidcFor,
      coordinator: deps.sharedTokenCoordinator,
      skewSeconds: config.refreshSkewSeconds,
      now,
    }),
    replay: deps.replay ?? memoryReplayGuard(now),
    upstreamFetch,
    forward: forwarder,
    upgrade: deps.upgrade,
    policy: policyPoint({
      fetch: deps.pdpFetch ?? ((input, init) => fetch(input, init)),
      now,
      log,
      metrics,
      claims: (session) => idps.of(session)?.config.claims ?? {},
    }),
    clientIp,
    tracer: deps.tracer,
  }
  metrics.live(() => services.live.size)
  // A server going down sends its event streams' clients to reconnect (to another instance).
  deps.background?.addEventListener('abort', () => services.live.drain(), { once: true })
  if (deps.tracer) {
    services.sessions = traceSessions(services.sessions, deps.tracer, config.sessionStore)
  }

  const app = new Hono<BffEnv>()
  // Errors count (CSRF refusals, store failures) where they become answers.
  const onError = (err: Error, c: Context) => {
    metrics.error(err)
    return renderError(err, c, log)
  }
  // First, so the request span covers everything, the session commit included.
  if (deps.tracer) app.use('*', traceRequests(deps.tracer, config.api))
  // Outermost but for the span, so the time and status are those of the whole answer; absent
  // with metrics off.
  if (metrics.timed) app.use('*', timeRequests(metrics))
  let warnedCookieBytes = false
  app.use('*', async (c, next) => {
    await next()
    try {
      await services.sessions.commit(c)
    } catch (err) {
      // The session could not be stored (too large, the store down) once the answer was ready,
      // maybe an upstream's: the error answer replaces it. Set over it, it would get its headers
      // (Hono copies them), an upstream's Content-Length cutting the error body short among them.
      const answered = c.res
      const error = onError(err as Error, c)
      await answered.body?.cancel().catch(() => {})
      c.res = undefined
      c.res = error
    }
    // Every Set-Cookie the BFF sends counts against the budget; say so once if it is ever passed.
    // A proxied answer can only carry the session cookie's lines: with none, there is nothing to
    // count, and reading its headers would only copy the upstream's header record.
    if (c.get('proxied') && !c.get('sessionCookieWritten')) return
    const bytes = setCookieBytes(c.res.headers)
    if (bytes > config.cookieTotalBytes && !warnedCookieBytes) {
      warnedCookieBytes = true
      log('warn', 'cookie.budget_exceeded', { bytes, budget: config.cookieTotalBytes })
    }
  })
  app.use('*', canonicalHost(config.baseUrl))
  app.use('/bff/*', async (c, next) => {
    await next()
    c.header('Referrer-Policy', 'no-referrer')
    c.header('X-Content-Type-Options', 'nosniff')
  })
  app.route('/', loginRoute(services))
  app.route('/', callbackRoute(services))
  app.route('/', userRoute(services))
  app.route('/', logoutRoute(services))
  app.route('/', healthRoute(services))
  app.route('/', idpsRoute(services))
  app.route('/', backchannelRoute(services))
  app.route('/', adminRoute(services))
  app.route('/', metricsRoute(services))
  app.route('/', eventsRoute(services))
  app.all('/bff/*', () => {
    throw new BffError(404, 'not_found', 'No such BFF endpoint.')
  })
  app.use('*', apiProxy(services))
  app.onError(onError)
  // Used on its own (not mounted in a host app), an address nothing serves answers like any error.
  app.notFound((c) => notFound(c, log))
  return app
}

/**
 * The answer for an address nothing serves (no BFF route, API prefix or static file): 404
 * `not_found` JSON for API callers, a readable page for browser navigations. The runtime entries
 * use it after their static files.
 */
export function notFound(c: Context, log: Logger = jsonLogger): Response {
  return renderError(new BffError(404, 'not_found', 'Nothing is at this address.'), c, log)
}

/**
 * The claims routes' `require` (and PDPs) read, as dot paths into the session's claims, through
 * every IdP's mapping: a cookie session keeps these and drops the rest.
 */
function policyClaims(config: Config): string[] {
  const names = config.api.flatMap((route) => Object.keys(route.require ?? {}))
  const mappings = config.idps.map((idp) => idp.claims)
  // A policy decision point (`authorize`) may read any normalised claim.
  if (config.api.some((route) => route.authorize)) {
    names.push(...mappings.flatMap((claims) => Object.keys(claims)))
  }
  return [
    ...new Set(
      names.flatMap((name) =>
        mappings.map((claims) => (Object.hasOwn(claims, name) ? claims[name]! : name))
      )
    ),
  ]
}

function defaultStore(config: Config, now: () => number): SessionStore {
  switch (config.sessionStore) {
    case 'cookie':
      return cookieStore({ now, maxLifetimeSeconds: config.sessionLifetimeSeconds })
    case 'memory':
      return memoryStore({ now })
    default:
      throw new ConfigError([
        `"sessionStore" "${config.sessionStore}" needs a store passed in deps.store by the runtime entry (redisStore from ./redis, durableObjectStore from ./workers)`,
      ])
  }
}

/**
 * One place turns errors into answers: JSON `{ error, message }` for API callers, a readable page
 * for browser navigations. Causes are logged; only the safe message reaches the client.
 */
function renderError(err: Error, c: Context, log: Logger): Response {
  const known = err instanceof BffError
  const status = known ? err.status : 500
  const code = known ? err.code : 'internal_error'
  const message = known ? err.message : 'Something went wrong on our side.'
  // 401 (not logged in: every anonymous page load asks /bff/user) and 404 are the expected
  // answers of a working BFF; refusals that point at a broken client or an attack stay warnings.
  const level = status >= 500 ? 'error' : status === 401 || status === 404 ? 'info' : 'warn'
  log(level, 'request.failed', {
    code,
    status,
    path: new URL(c.req.url).pathname,
    reason: errorReason(known ? err.cause : err),
  })
  const headers: Record<string, string> = { 'Cache-Control': 'no-store' }
  // A 401 or 403 tells the browser nothing stale may be reused; Set-Cookie lines (a cleared
  // session cookie) written before the error still go out.
  const setCookies = c.res?.headers.getSetCookie() ?? []
  let response: Response
  if (wantsHtml(c)) {
    const page = pageForError(status, code)
    response = new Response(errorPage(page.title, page.message ?? message, status, page.links), {
      status,
      headers: { ...PAGE_SECURITY_HEADERS, 'Content-Type': 'text/html; charset=utf-8' },
    })
  } else {
    response = new Response(JSON.stringify({ error: code, message }), {
      status,
      headers: { ...headers, 'Content-Type': 'application/json' },
    })
  }
  for (const cookie of setCookies) response.headers.append('Set-Cookie', cookie)
  return response
}

/** Browser navigations (no CSRF header, HTML accepted) get a page; everything else JSON. */
function wantsHtml(c: Context): boolean {
  if (c.req.header('x-csrf')) return false
  return (c.req.header('accept') ?? '').includes('text/html')
}
