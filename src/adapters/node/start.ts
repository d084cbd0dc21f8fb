/**
 * The Node server: environment -> config, the chosen session store, the SPA's static files
 * (static.ts), and an HTTP listener (`startNode`). No demo parts: those start only from server.ts
 * (`npm start` without BFF_ISSUER), so the published entries never load the embedded IdP.
 */
import { serve, type ServerType } from '@hono/node-server'
import { getConnInfo } from '@hono/node-server/conninfo'
import { Hono } from 'hono'
import { Redis } from 'ioredis'
import { Agent } from 'undici'
import type { IncomingMessage } from 'node:http'
import { readFileSync } from 'node:fs'
import { createBff, notFound, type BffDeps } from '../../core/app.ts'
import { ConfigError, parseConfig, type Config, type Env } from '../../core/config.ts'
import { jsonLogger } from '../../core/log.ts'
import { withRawHeaders } from './headers.ts'
import { nodeForward } from './upstream.ts'
import { serveSpa, spaFromEnv } from './static.ts'
import { maxInlineJsonBytes } from '../../core/session/cookie.ts'
import { cookieStore } from '../../core/session/stores/cookie.ts'
import { hybridStore } from '../../core/session/stores/hybrid.ts'
import { redisSessionKeyPrefix, redisStore } from './redis-store.ts'
import { redisSessionCache } from './redis-cache.ts'
import {
  redisRefreshCoordinator,
  redisReplayGuard,
  redisRevocationList,
} from './redis-coordination.ts'

export interface NodeServer {
  url: string
  config: Config
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

/** Starts the BFF on Node from `BFF_*` settings. Throws ConfigError on bad settings. */
export async function startNode(env: Env, options: StartOptions = {}): Promise<NodeServer> {
  const port = Number(env.PORT ?? 3000)
  const host = env.HOST ?? '127.0.0.1'
  const badPort =
    Number.isInteger(port) && port >= 0 && port <= 65535
      ? undefined
      : `PORT must be a port number, got "${env.PORT}"`
  const early = badPort ? [badPort] : []
  // BFF_CONFIG is a path here; the core takes the text.
  const configPath = env.BFF_CONFIG?.trim()
  let configFile: string | undefined
  if (configPath) {
    try {
      configFile = readFileSync(configPath, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error'
      early.push(`BFF_CONFIG cannot read "${configPath}" (${code})`)
    }
  }
  const { spa, problems: spaProblems } =
    options.serveStatic === false
      ? { spa: undefined, problems: [] }
      : spaFromEnv(env, options.spaDir)
  early.push(...spaProblems)
  let config: Config
  try {
    config = parseConfig(env, {
      baseUrl: `http://localhost:${badPort ? 3000 : port}`,
      sessionStore: 'cookie',
      configFile,
    })
  } catch (err) {
    // One line per problem, the port's and the file's among them.
    if (early.length && err instanceof ConfigError)
      throw new ConfigError([...early, ...err.problems])
    throw err
  }
  if (early.length) throw new ConfigError(early)
  const closers: Array<() => Promise<unknown>> = []
  // Ends background work (the IdP discovery check's retries) when the server closes.
  const life = new AbortController()
  closers.push(async () => life.abort())
  const runtime = await nodeDeps(config, env, closers, options.deps)
  // Connections to the upstream APIs, kept alive between calls.
  const upstreams = new Agent()
  closers.push(() => upstreams.destroy())
  const app = new Hono()
  app.route(
    '/',
    createBff(config, {
      clientIp: (c) => {
        try {
          return getConnInfo(c).remote.address
        } catch {
          return undefined
        }
      },
      // Upstream calls through undici directly rather than fetch; a caller's own upstreamFetch keeps fetch.
      ...(options.deps?.upstreamFetch ? {} : { forward: nodeForward({ dispatcher: upstreams }) }),
      ...runtime,
      background: life.signal,
      ...options.deps,
    })
  )
  // After the BFF's routes, and never under its own prefixes.
  if (spa) serveSpa(app, spa, ['/bff/', ...config.api.map((route) => route.prefix)])
  // Not a BFF route, an API prefix or a static file: JSON or a page, as every other error.
  const log = options.deps?.log ?? jsonLogger
  app.notFound((c) => notFound(c, log))

  const server = await listen(app, port, host)
  const address = server.address()
  const actualPort = typeof address === 'object' && address ? address.port : port
  closers.unshift(() => new Promise((resolve) => server.close(resolve)))
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`,
    config,
    async close() {
      for (const close of closers) await close().catch(() => {})
    },
  }
}

/**
 * Runtime parts chosen by settings: Redis (for the `redis` store, or shared lists in `cookie` mode
 * when BFF_REDIS_URL is set) or nothing (`memory`, plain `cookie`), in which case the core builds
 * its in-memory defaults.
 */
async function nodeDeps(
  config: Config,
  env: Env,
  closers: Array<() => Promise<unknown>>,
  deps: BffDeps = {}
): Promise<Pick<BffDeps, 'store' | 'replay'>> {
  const { now } = deps
  const log = deps.log ?? jsonLogger
  if (config.sessionStore === 'durable-object') {
    throw new ConfigError(['BFF_SESSION_STORE "durable-object" works only on Cloudflare Workers'])
  }
  // The memory store is one process's own: Redis adds nothing to it, whatever BFF_REDIS_URL says.
  if (config.sessionStore === 'memory') return {}
  if (config.sessionStore === 'cookie' && !env.BFF_REDIS_URL) return {}
  const redis = new Redis(config.redisUrl, {
    // Fail fast while Redis is away: requests answer 503 instead of queueing without bound.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    // A hung Redis must not hang requests: every command gives up after 2 s (answering 503).
    commandTimeout: 2000,
    // Commands issued in one turn of the event loop leave in one write (and their answers come
    // back in one read): under load, one socket write per request fewer.
    enableAutoPipelining: true,
  })
  redis.on('error', () => {}) // reported through /bff/health and 503s; avoid an unhandled event
  closers.push(() => redis.quit())
  // Give the first connection a moment so the first requests do not fail; start anyway without it.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 2000)
    redis.once('ready', () => {
      clearTimeout(timer)
      resolve()
    })
  })
  const lists = { prefix: config.redisPrefix, now }
  // The lock must outlast one IdP call with its retries.
  const lockMs = (config.idpTimeoutSeconds * 3 + 5) * 1000
  // Sessions read here stay in memory while Redis reports every change to them, on a connection
  // of their own: most API calls then cost no Redis round trip. Both stores below share it.
  const cache = redisSessionCache(redis.duplicate({ autoResubscribe: false }), {
    keyPrefix: redisSessionKeyPrefix(redis, config.redisPrefix),
    log,
    now,
  })
  closers.unshift(() => cache.close())
  const sessions = { ...lists, refreshLockMs: lockMs, cache }
  return {
    replay: redisReplayGuard(redis, lists),
    store:
      config.sessionStore === 'redis'
        ? redisStore(redis, sessions)
        : // Cookie mode with Redis at hand: sessions too large for the cookie go to Redis.
          hybridStore({
            cookie: cookieStore({
              now,
              maxLifetimeSeconds: config.sessionLifetimeSeconds,
              revocations: redisRevocationList(redis, lists),
              refreshOnce: redisRefreshCoordinator(redis, { prefix: config.redisPrefix, lockMs }),
            }),
            server: redisStore(redis, sessions),
            maxInlineBytes: maxInlineJsonBytes({
              maxCookieBytes: config.cookieMaxBytes,
              maxTotalBytes: config.cookieTotalBytes,
            }),
            log,
          }),
  }
}

function listen(app: Hono, port: number, hostname: string): Promise<ServerType> {
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
    server.once('error', reject)
  })
}
