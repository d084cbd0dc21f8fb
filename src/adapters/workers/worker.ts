/**
 * Cloudflare Workers entry: bindings -> config, the session store, the BFF, and the demo SPA from
 * the static assets. Settings are the same `BFF_*` names as on Node, as `[vars]` or secrets.
 *
 * The app is built when the isolate starts, from the bindings the runtime offers at module scope
 * (`env` of `cloudflare:workers`): a session's first call on a fresh isolate then pays for its own
 * work only, not for parsing settings and wiring routes (bench/workers-cold.ts measures it). Only
 * pure set-up runs there: the runtime forbids I/O, timers and random values outside a handler, and
 * nothing in the build needs them. Where the runtime has no such `env`, the first request builds.
 * A Worker cannot refuse to start: with a bad setting every request answers 500 `invalid_config`
 * naming the settings, and the isolate logs each problem once, on its first request.
 */
import * as runtime from 'cloudflare:workers'
import type { ExecutionContext, Hono } from 'hono'
import { createBff, notFound } from '../../core/app.ts'
import type { BffEnv } from '../../core/hono-env.ts'
import { ConfigError, optionsFromEnv, type Config } from '../../core/config/env.ts'
import { jsonLogger } from '../../core/observe/log.ts'
import { SPA_SECURITY_HEADERS } from '../../core/pages.ts'
import { sharedCookieStore } from '../../core/session/stores/hybrid.ts'
import { webIron } from '../../core/session/web-iron.ts'
import { analyticsEngineHooks } from './analytics.ts'
import { type SessionObjectEnv } from './bindings.ts'
import {
  durableObjectSharedTokenCoordinator,
  durableObjectRefreshCoordinator,
  durableObjectReplayGuard,
  durableObjectRevocations,
} from './coordination.ts'
import { SessionIndexObject } from './session-index-object.ts'
import { SessionObjectBase } from './session-object.ts'
import { sessionRefresherFor } from './session-refresher.ts'
import { mtlsProblems, workersForward } from './mtls.ts'
import { durableObjectStore } from './session-store.ts'
import { durableObjectSessionEndBus } from './session-ends.ts'
import { handshakeRefusal, workersWebSockets } from './websocket.ts'
import { configFileOf, settingsOf, storeProblems, testClockProblems } from './settings.ts'
import { now, syncTestClock } from './test-clock.ts'
import type { SessionStore } from '../../core/session/types.ts'
import type { RefreshCoordinator } from '../../core/tokens/refresh-coordinator.ts'

/**
 * The session's Durable Object with the token refresh this Worker's settings describe: the object
 * decides that a session is refreshed once across isolates, and this entry tells it how to refresh
 * (session-refresher.ts), so the object's own module never imports config, OIDC or token code.
 */
export class SessionObject extends SessionObjectBase {
  protected override refresher() {
    return sessionRefresherFor(this.env)
  }
}

// The runtime finds Durable Object classes among the entry module's exports.
export { SessionIndexObject }

export interface WorkerEnv extends SessionObjectEnv {
  /** The static assets (wrangler.toml `[assets]`): the demo SPA. Absent in tests. */
  ASSETS?: { fetch(request: Request): Promise<Response> }
}

type WorkerApp = Hono<BffEnv>

// The WebSocket routes' relays of this isolate.
const sockets = workersWebSockets()
let app: WorkerApp | ConfigError | undefined = buildAtStartup()
let problemsLogged = false

export default {
  async fetch(request: Request, env: WorkerEnv, ctx: ExecutionContext): Promise<Response> {
    app ??= build(env)
    if (app instanceof ConfigError) return misconfigured(app)
    const refused = handshakeRefusal(request)
    if (refused) return refused
    await syncTestClock(env)
    const response = await app.fetch(request, env, ctx)
    sockets.settle(request, response)
    return response
  },
}

/**
 * The app from the module-scope bindings, or undefined (no such bindings, or the build needed
 * something only a handler may do: the first request builds then, and meets the same error).
 */
function buildAtStartup(): WorkerApp | ConfigError | undefined {
  const env = (runtime as { env?: WorkerEnv }).env
  if (!env || typeof env !== 'object') return undefined
  try {
    return build(env)
  } catch {
    return undefined
  }
}

function build(env: WorkerEnv): WorkerApp | ConfigError {
  // Every problem at once, as on Node: the test clock, the settings and the bindings.
  const problems = testClockProblems(env)
  const settings = settingsOf(env)
  let config: Config | undefined
  try {
    config = optionsFromEnv(settings, {
      sessionStore: 'durable-object',
      configFile: configFileOf(env),
    })
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems.push(...err.problems)
  }
  // The store named, even when some other setting is wrong: its needs are problems of their own.
  problems.push(
    ...storeProblems(env, config?.sessionStore ?? settings.BFF_SESSION_STORE ?? 'durable-object')
  )
  // Routes with mutual TLS: each names a bound mtls_certificates binding.
  if (config) problems.push(...mtlsProblems(env, config.api))
  if (!config || problems.length) return new ConfigError(problems)
  if (config.sessionStore === 'memory') {
    // Allowed for trying things out, but an isolate's memory is not shared with any other.
    jsonLogger('warn', 'config.memory_store', { reason: 'sessions live in one isolate only' })
  }

  let store: SessionStore | undefined
  // A refresh happens in the session's object, once for every isolate (memory: this isolate only).
  let refreshCoordinator: RefreshCoordinator | undefined
  if (config.sessionStore === 'durable-object') {
    store = durableObjectStore(env)
    refreshCoordinator = durableObjectRefreshCoordinator(env, 'durable-object')
  }
  if (config.sessionStore === 'cookie') {
    // As on Node with Redis: what one isolate learns (revocations, the newest generation, a
    // refresh) holds in all of them, and a session too large for the cookie budget is kept in its
    // object while the cookie carries only its id.
    store = sharedCookieStore(config, {
      server: durableObjectStore(env),
      revocations: durableObjectRevocations(env),
      now,
      log: jsonLogger,
    })
    refreshCoordinator = durableObjectRefreshCoordinator(env, 'cookie')
  }

  // The BFF's app itself, not mounted in another: mounted, Hono wraps each of its handlers in
  // one more error boundary on every request.
  const worker: WorkerApp = createBff(config, {
    store,
    refreshCoordinator,
    now,
    // Logout token ids must be spent once across all isolates, not once per isolate.
    replay: config.sessionStore === 'memory' ? undefined : durableObjectReplayGuard(env),
    // Client-credentials and exchanged tokens: one grant for all isolates (memory: this one's).
    sharedTokenCoordinator:
      config.sessionStore === 'memory'
        ? undefined
        : durableObjectSharedTokenCoordinator(env, { now }),
    // Session ends reach the live connections of every isolate through the sessions' objects
    // (memory: this isolate's only).
    sessionEnds: config.sessionStore === 'memory' ? undefined : durableObjectSessionEndBus(env),
    clientIp: (c) => c.req.header('cf-connecting-ip'),
    // Seals through WebCrypto directly: the same format as iron-session's, cheaper to open on
    // a fresh isolate (src/core/session/web-iron.ts).
    iron: webIron,
    forward: workersForward(),
    // WebSocket routes: a WebSocketPair to the browser, a fetch upgrade to the upstream.
    upgrade: sockets.upgrade,
    // Counters are per isolate; with a dataset bound, each request is also written there.
    metrics: analyticsEngineHooks(env),
  })
  // Everything outside /bff/* and the API prefixes is the SPA, with the Node entry's headers.
  worker.all('*', async (c) => {
    // No such asset (or no assets at all): JSON or a page, as every other error.
    const assets = (c.env as WorkerEnv | undefined)?.ASSETS
    if (!assets) return notFound(c, jsonLogger)
    const asset = await assets.fetch(c.req.raw)
    if (asset.status === 404) return notFound(c, jsonLogger)
    const response = new Response(asset.body, asset) // assets' headers are immutable
    for (const [name, value] of Object.entries(SPA_SECURITY_HEADERS))
      response.headers.set(name, value)
    return response
  })
  // Hono compiles its routes into one matcher on the first match: here, once every route is in,
  // rather than on the isolate's first request (pure work, allowed at start-up).
  worker.router.match('GET', '/')
  return worker
}

/** 500 with the names of the bad settings; the details (never secret values) are in the log. */
function misconfigured(err: ConfigError): Response {
  // Logged on the first request rather than at start-up: an isolate logs them once either way.
  if (!problemsLogged) {
    problemsLogged = true
    for (const problem of err.problems) jsonLogger('error', 'config.invalid', { problem })
  }
  const settings = [...new Set(err.problems.map((problem) => problem.split(' ')[0]))]
  return new Response(
    JSON.stringify({
      error: 'invalid_config',
      message: `The BFF is misconfigured; the operator must fix: ${settings.join(', ')}.`,
      settings,
    }),
    { status: 500, headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' } }
  )
}
