/**
 * The Node server: environment -> config, the chosen session store, the SPA's static files
 * (static.ts), and an HTTP listener (`startNode`). No demo parts: those start only from server.ts
 * (`npm start` without BFF_ISSUER), so the published entries never load the embedded IdP.
 */
import { serve, type ServerType } from '@hono/node-server'
import { getConnInfo } from '@hono/node-server/conninfo'
import type { Hono } from 'hono'
import { Agent } from 'undici'
import type { Cluster, Redis } from 'ioredis'
import type { IncomingMessage, Server } from 'node:http'
import { createBff, notFound, type BffDeps } from '../../core/app.ts'
import type { BffEnv } from '../../core/hono-env.ts'
import { nodeHmac, nodeIron } from './crypto.ts'
import { ConfigError, type Config, type Env } from '../../core/config/env.ts'
import { jsonLogger } from '../../core/observe/log.ts'
import { answerClientError } from './client-error.ts'
import { grantProblems } from './grant-check.ts'
import { nodeProcessMetrics } from './metrics.ts'
import { withRawHeaders } from './headers.ts'
import { nodeConfigFromEnv, type NodeSettings } from './settings.ts'
import { nodeForward } from './upstream.ts'
import { nodeWebSockets } from './websocket.ts'
import { nodeTracing } from './tracing.ts'
import { nodePdpFetch } from './pdp-fetch.ts'
import { serveSpa, spaFromEnv } from './static.ts'
import { sharedCookieStore } from '../../core/session/stores/hybrid.ts'
import { redisSessionKeyPrefix, redisStore } from './redis-store.ts'
import { redisSessionCache } from './redis-cache.ts'
import { redisClusterSessionCache } from './redis-cluster-cache.ts'
import { connectRedis, firstConnection } from './redis-connect.ts'
import {
  redisRefreshCoordinator,
  redisReplayGuard,
  redisRevocationList,
} from './redis-coordination.ts'
import { redisSharedTokenCoordinator } from './redis-shared-tokens.ts'
import { redisSessionEndBus } from './redis-session-ends.ts'

export interface NodeServer {
  url: string
  /** The core's resolved options. */
  config: Config
  /** Node's own settings (listen address, Redis). */
  settings: NodeSettings
  close(): Promise<void>
}

export interface StartOptions {
  /** Extra dependencies, e.g. a clock or logger for tests. */
  deps?: BffDeps
  /**
   * The SPA's directory when BFF_SPA_DIR is unset; the demo passes its public/ (DEMO_SPA_DIR).
   * Default: none, so production serves no files until BFF_SPA_DIR names them.
   */
  spaDir?: string
  /** `false`: no static files at all, not even BFF_SPA_DIR's (a BFF tested on its own). */
  serveStatic?: boolean
}

/**
 * Starts the BFF on Node from `BFF_*` settings (and PORT, HOST, Redis: settings.ts).
 * @throws ConfigError naming every bad setting.
 */
export async function startNode(env: Env, options: StartOptions = {}): Promise<NodeServer> {
  const { spa, problems: spaProblems } =
    options.serveStatic === false
      ? { spa: undefined, problems: [] }
      : spaFromEnv(env, options.spaDir)
  // Node's settings, the SPA's and the core's options: every problem of them all at once.
  let parsed: ReturnType<typeof nodeConfigFromEnv>
  try {
    parsed = nodeConfigFromEnv(env)
  } catch (err) {
    if (spaProblems.length && err instanceof ConfigError) {
      throw new ConfigError([...err.problems, ...spaProblems])
    }
    throw err
  }
  if (spaProblems.length) throw new ConfigError(spaProblems)
  const { config, settings } = parsed
  const { port, host } = settings
  const grants = await grantProblems(config, options.deps?.fetch)
  if (grants.length) throw new ConfigError(grants)
  // OTLP trace export when OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set; nothing loaded otherwise.
  const tracing = await nodeTracing(env)
  // Upstream calls through undici directly rather than fetch; a caller's own upstreamFetch keeps
  // fetch. Made first: a route's `tls` that cannot be used stops start-up before Redis is opened.
  const upstreams = new Agent()
  const forwarder = options.deps?.upstreamFetch
    ? undefined
    : nodeForward({ dispatcher: upstreams, routes: config.api })
  // The routes' policy decision points (`authorize`), asked through undici as well.
  const pdp = nodePdpFetch()
  const closers: Array<() => Promise<unknown>> = [
    // Connections to the upstream APIs, kept alive between calls; routes with mutual TLS have
    // Agents of their own.
    () => upstreams.destroy(),
    async () => forwarder?.close(),
    () => pdp.close(),
    // After the server has drained: the spans of its last requests are sent, then export stops.
    async () => tracing?.close(),
  ]
  // Ends background work (the IdP discovery check's retries) when the server closes.
  const life = new AbortController()
  closers.push(async () => life.abort())
  const closeAll = async () => {
    for (const close of closers) await close().catch(() => {})
  }
  // WebSocket routes: the app checks each upgrade, this relays the sockets (websocket.ts).
  const sockets = nodeWebSockets()
  // The BFF's app itself, not mounted in another: mounted, Hono wraps each of its handlers in one
  // more error boundary on every request (4 KB of allocations a proxied call).
  let app: Hono<BffEnv>
  try {
    const runtime = await nodeDeps(config, settings, closers, options.deps)
    const processMetrics = config.metricsToken
      ? await nodeProcessMetrics(options.deps?.log ?? jsonLogger)
      : undefined
    app = createBff(config, {
      clientIp: (c) => {
        try {
          return getConnInfo(c).remote.address
        } catch {
          return undefined
        }
      },
      ...(forwarder ? { forward: forwarder } : {}),
      pdpFetch: pdp.fetch,
      // Seals and the session-id cookie's MAC through node:crypto: the same formats, cheaper.
      iron: nodeIron,
      hmac: nodeHmac,
      upgrade: sockets.upgrade,
      ...(tracing ? { tracer: tracing.tracer } : {}),
      ...runtime,
      ...(processMetrics ? { metrics: processMetrics } : {}),
      background: life.signal,
      ...options.deps,
    })
  } catch (err) {
    // A problem createBff finds (a route's `tls` Node cannot honour): nothing is left open.
    await closeAll()
    throw err
  }
  // After the BFF's routes, and never under its own prefixes.
  if (spa) serveSpa(app, spa, ['/bff/', ...config.api.map((route) => route.prefix)])
  // Not a BFF route, an API prefix or a static file: JSON or a page, as every other error.
  const log = options.deps?.log ?? jsonLogger
  app.notFound((c) => notFound(c, log))

  const server = await listen(app, port, host)
  sockets.attach(server as Server, (request, env) => app.fetch(request, env))
  const address = server.address()
  const actualPort = typeof address === 'object' && address ? address.port : port
  // Background work stops first, so a discovery retry neither logs nor keeps the process up while
  // connections drain; idle kept-alive connections are closed, not waited for.
  closers.unshift(
    async () => life.abort(),
    // Open sockets are told the server is going away; the server's close waits for them.
    () => sockets.close(),
    () =>
      new Promise((resolve) => {
        server.close(resolve)
        if ('closeIdleConnections' in server) server.closeIdleConnections()
      })
  )
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`,
    config,
    settings,
    close: closeAll,
  }
}

/**
 * Runtime parts chosen by settings: Redis (for the `redis` store, or shared lists in `cookie` mode
 * when BFF_REDIS_URL is set; one node, a Cluster or through Sentinel; session ends over its
 * pub/sub either way) or nothing (`memory`, plain `cookie`), in which case the core builds its
 * in-memory defaults.
 */
async function nodeDeps(
  config: Config,
  settings: NodeSettings,
  closers: Array<() => Promise<unknown>>,
  deps: BffDeps = {}
): Promise<
  Pick<
    BffDeps,
    'store' | 'replay' | 'refreshCoordinator' | 'sharedTokenCoordinator' | 'sessionEnds'
  >
> {
  const { now } = deps
  const log = deps.log ?? jsonLogger
  // The memory store is one process's own: Redis adds nothing to it, whatever BFF_REDIS_URL says.
  if (config.sessionStore === 'memory') return {}
  if (config.sessionStore === 'cookie' && settings.redisUrl === undefined) return {}
  // One node, a Cluster (BFF_REDIS_MODE=cluster) or Sentinel's primary: redis-connect.ts.
  const redis = connectRedis(settings)
  closers.push(() => redis.quit())
  // Give the first connection a moment so the first requests do not fail; start anyway without it.
  await firstConnection(redis)
  const lists = { prefix: settings.redisPrefix, now }
  // The lock must outlast one IdP call with its retries.
  const lockMs = (config.idpTimeoutSeconds * 3 + 5) * 1000
  // Sessions read here stay in memory while Redis reports every change to them, on connections
  // of their own (one per primary on a Cluster): most API calls then cost no Redis round trip.
  const cacheOptions = {
    keyPrefix: redisSessionKeyPrefix(redis, settings.redisPrefix),
    log,
    now,
  }
  const cache = redis.isCluster
    ? redisClusterSessionCache(redis as Cluster, cacheOptions)
    : redisSessionCache((redis as Redis).duplicate({ autoResubscribe: false }), cacheOptions)
  closers.unshift(() => cache.close())
  // Session ends reach every instance's live connections through Redis pub/sub, on a connection
  // of their own; resubscribed by the bus itself after each reconnection.
  const subscriber = redis.isCluster
    ? (redis as Cluster).duplicate()
    : (redis as Redis).duplicate({ autoResubscribe: false, enableOfflineQueue: true })
  const sessionEnds = redisSessionEndBus(redis, subscriber, { prefix: settings.redisPrefix, log })
  closers.unshift(() => sessionEnds.close())
  const server = redisStore(redis, { ...lists, cache })
  // One refresh per session generation across the instances: for the `redis` store the lock holder
  // also stores the new tokens; in cookie mode they travel in the cookie (or, for a session too
  // large for it, through the hybrid store's own update).
  const refreshCoordinator = redisRefreshCoordinator(redis, {
    prefix: settings.redisPrefix,
    lockMs,
    now,
    ...(config.sessionStore === 'redis' ? { sessions: server } : {}),
  })
  return {
    sessionEnds,
    replay: redisReplayGuard(redis, lists),
    refreshCoordinator,
    // Client-credentials and exchanged tokens: one grant for all instances, shared through Redis.
    sharedTokenCoordinator: redisSharedTokenCoordinator(redis, {
      prefix: settings.redisPrefix,
      lockMs,
      now,
    }),
    store:
      config.sessionStore === 'redis'
        ? server
        : // Cookie mode with Redis at hand: sessions too large for the cookie go to Redis.
          sharedCookieStore(config, {
            server,
            revocations: redisRevocationList(redis, lists),
            now,
            log,
          }),
  }
}

function listen(app: Hono<BffEnv>, port: number, hostname: string): Promise<ServerType> {
  return new Promise((resolve, reject) => {
    const server = serve(
      {
        // Headers are read from Node's raw lines until something needs a whole Headers object.
        fetch: (req, env: { incoming?: unknown }) =>
          app.fetch(withRawHeaders(req, env.incoming), env),
        port,
        hostname,
      },
      () => resolve(server)
    )
    // Host names are case-insensitive, but node-server refuses (an empty 400) a Host spelt other
    // than the lower-case hostname of the URL it builds from it: `LOCALHOST:3000`, `App.Example`.
    server.prependListener('request', (incoming: IncomingMessage) => {
      const host = incoming.headers.host
      if (host && host !== host.toLowerCase()) incoming.headers.host = host.toLowerCase()
    })
    server.on('clientError', answerClientError)
    server.once('error', reject)
  })
}
