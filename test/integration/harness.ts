/**
 * One running stack for integration tests: the real IdP (oidc-provider), a recording upstream API
 * and the BFF, all on loopback. The BFF's clock can be moved forward so token expiry is tested
 * without sleeping; the IdP keeps real time.
 *
 * The same tests drive two targets (vitest projects, see vitest.config.ts): the BFF on Node, and
 * the Worker bundle in the real workerd runtime (test/adapters/workers/workerd.ts). `TARGET` says
 * which.
 */
import { Redis } from 'ioredis'
import * as client from 'openid-client'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe } from 'vitest'
import {
  DEMO_BFF_CLIENT,
  bffClientMetadata,
  startIdp,
  type Idp,
  type IdpOptions,
} from '../../src/demo/idp.ts'
import { memoryStore } from '../../src/core/session/stores/memory.ts'
import { redisStore } from '../../src/adapters/node/redis-store.ts'
import { cookieStore } from '../../src/core/session/stores/cookie.ts'
import type { Session, SessionRef, SessionStore } from '../../src/core/session/types.ts'
import type { Env } from '../../src/core/config/env.ts'
import type { SessionEnd, SessionEndBus } from '../../src/core/session/live.ts'
import { startNode } from '../../src/adapters/node/server.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { captureLog } from '../helpers/capture-log.ts'
import { freePort, startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'
import { tokenInspector } from '../helpers/token-inspector.ts'
import { openSessionCookie } from '../helpers/session-cookie.ts'
import type { IdpFront } from '../helpers/idp-front.ts'

export type StoreKind = 'cookie' | 'memory' | 'redis' | 'durable-object'

/** Every store kind; `describeStores` skips those the target cannot run. */
export const ALL_STORES: readonly StoreKind[] = ['cookie', 'memory', 'redis', 'durable-object']

export type Target = 'node' | 'workerd'

/** The runtime under test, from `BFF_TEST_TARGET` (set per vitest project). */
export const TARGET: Target = process.env.BFF_TEST_TARGET === 'workerd' ? 'workerd' : 'node'

/** A store that keeps sessions on the server, for tests that need one: the target's own. */
export const SERVER_STORE: StoreKind = TARGET === 'workerd' ? 'durable-object' : 'memory'

/** Why a store does not run on a target; the stores not listed run. */
const UNSUPPORTED: Record<Target, Partial<Record<StoreKind, string>>> = {
  node: { 'durable-object': 'Durable Objects exist only on Cloudflare Workers' },
  workerd: {
    redis: 'the redis store needs ioredis and TCP: Node only',
    memory:
      'each Workers isolate has its own memory, so it is no store for Workers, and the test cannot read it',
  },
}

/** Why `store` cannot run on this target, or undefined when it can. */
export function unsupported(store: StoreKind, target: Target = TARGET): string | undefined {
  return UNSUPPORTED[target][store]
}

/**
 * `describe.each` over stores that knows the target: a store this target cannot run is reported as
 * a skipped suite whose title gives the reason. `%s` in `title` becomes the store's name.
 */
export function describeStores(
  stores: readonly StoreKind[],
  title: string,
  suite: (store: StoreKind) => void
): void {
  for (const store of stores) {
    const name = title.replace('%s', store)
    const reason = unsupported(store)
    if (reason) describe.skip(`${name} (skipped on ${TARGET}: ${reason})`, () => suite(store))
    else describe(name, () => suite(store))
  }
}

export interface StackOptions {
  store?: StoreKind
  /** Access token lifetime at the IdP, seconds. */
  accessTokenTtl?: number
  /**
   * Public origin the BFF believes it has (default its loopback URL), or a function of the port
   * the tests reach it on.
   */
  baseUrl?: string | ((port: number) => string)
  /** Extra or overriding BFF settings. */
  env?: Env
  /**
   * A config file (BFF_CONFIG) made from the stack's IdP and upstream; it then replaces the IdP
   * and BFF_API settings (also wrangler.toml's). Node: a temporary file; workerd: the JSON text in the binding.
   */
  configFile?: (stack: {
    issuer: string
    upstream: string
    /** Each IdP's issuer by name (`idps`). */
    issuers: Record<string, string>
  }) => unknown
  /**
   * Several IdPs, by name in order: a real oidc-provider each (the first is `idp`), each knowing
   * the BFF at `/bff/callback/<name>` and `/bff/backchannel/<name>`. `configFile` must name them.
   * `idpClaims` are that IdP's accounts' extra claims.
   */
  idps?: Record<string, { idpClaims?: Record<string, unknown> }>
  /**
   * workerd only: this many more isolates run the same Worker and share its Durable Objects, as two
   * Cloudflare machines would; their URLs are `isolateUrls`.
   */
  isolates?: number
  /** A proxy in front of the IdP: its URL is then the issuer, and every call goes through it. */
  front?: IdpFront
  /** IdP settings beyond the stack's (resources, grants it serves). */
  idp?: Omit<IdpOptions, 'clients' | 'issuer' | 'accessTokenTtl'>
  /** The upstream reads every bearer token it gets (`upstream.requests[i].token`). */
  inspectTokens?: boolean
  /** Claims every account has at the IdP (its `extraProfileClaims`), e.g. nested roles. */
  idpClaims?: Record<string, unknown>
  /** More metadata of the BFF's client at the IdP, e.g. `{ require_auth_time: true }`. */
  clientMetadata?: Record<string, unknown>
  /** workerd only: more service bindings of the Worker (see `WorkerdOptions.serviceBindings`). */
  serviceBindings?: Record<string, unknown>
  /** Node only: the bus that carries session ends (`deps.sessionEnds`), for the test to hold. */
  sessionEnds?: SessionEndBus
}

export interface Stack {
  /** Where the tests reach the BFF. */
  url: string
  /** The BFF's configured public origin. */
  baseUrl: string
  /** The runtime the BFF runs on. */
  target: Target
  idp: Idp
  /** Every IdP by name, with `idps`; else `{ default: idp }`. */
  idps: Record<string, Idp>
  upstream: RecordingUpstream
  store: StoreKind
  secret: string
  /** Moves the BFF's clock forward. */
  advance(seconds: number): void
  jar(): CookieJar
  /**
   * Logs `user` in through the IdP's pages; returns the BFF callback's response. `headers` go with
   * the callback request (a browser's `traceparent`, say).
   */
  login(
    jar: CookieJar,
    options?: {
      user?: string
      returnTo?: string
      prompt?: string
      idp?: string
      headers?: Record<string, string>
    }
  ): Promise<Response>
  /** The server-side view of the jar's session, read the way the BFF reads it. */
  sessionOf(jar: CookieJar): Promise<Session | null>
  introspect(token: string): Promise<{ active: boolean; sub?: string }>
  close(): Promise<void>
  /** URLs of the extra isolates (`options.isolates`); empty on Node. */
  isolateUrls: string[]
  /** What the BFF has logged so far, one JSON line each (workerd's arrive shortly after). */
  logs(): string[]
  /**
   * Publishes a session end as the BFF would: on Node on the bus of `options.sessionEnds` (which
   * it needs), in workerd to the Durable Object the end names.
   */
  publishEnd(end: SessionEnd): Promise<void>
  /** workerd only: how many live connections listen at the session's object now. */
  objectListeners(sessionId: string): Promise<number>
}

/**
 * The port is chosen before the IdP is told the redirect URI, and a test file running alongside
 * may take it meanwhile: then the whole stack starts again on another port.
 */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startStackOnce(options)
    } catch (err) {
      // Node says EADDRINUSE; Miniflare, starting workerd on the port, ERR_ADDRESS_IN_USE.
      const code = (err as NodeJS.ErrnoException).code
      const taken = code === 'EADDRINUSE' || code === 'ERR_ADDRESS_IN_USE'
      if (!taken || attempt === 3) throw err
    }
  }
}

async function startStackOnce(options: StackOptions): Promise<Stack> {
  const store = options.store ?? 'cookie'
  const reason = unsupported(store)
  if (reason) throw new Error(`the ${store} store cannot run on ${TARGET}: ${reason}`)
  if (options.isolates && TARGET !== 'workerd')
    throw new Error('"isolates" needs the workerd target')
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const baseUrl =
    typeof options.baseUrl === 'function' ? options.baseUrl(port) : (options.baseUrl ?? url)
  const startOne = (name: string | undefined, idpClaims = options.idpClaims) =>
    startIdp({
      ...options.idp,
      // The front stands before the one IdP (named by a config file, or not).
      ...(options.front && !options.idps ? { issuer: options.front.url } : {}),
      accessTokenTtl: options.accessTokenTtl ?? 60,
      extraProfileClaims: idpClaims,
      clients: [
        {
          ...bffClientMetadata({
            redirectUris: [`${baseUrl}/bff/callback${name ? `/${name}` : ''}`],
            postLogoutRedirectUris: [`${baseUrl}/`, `${baseUrl}/logged-out.html`],
            backchannelLogoutUri: `${baseUrl}/bff/backchannel${name ? `/${name}` : ''}`,
          }),
          ...options.clientMetadata,
        },
      ],
    })
  const idps: Record<string, Idp> = {}
  for (const [name, one] of Object.entries(options.idps ?? {})) {
    idps[name] = await startOne(name, one.idpClaims).catch(async (err) => {
      await Promise.all(Object.values(idps).map((started) => started.stop()))
      throw err
    })
  }
  // A config file naming its one IdP has that IdP answer at /bff/callback/<name>.
  const fileIdps = options.configFile?.({ issuer: 'http://x', upstream: 'http://x', issuers: {} })
  const [fileIdp] = Object.keys((fileIdps as { idps?: object } | undefined)?.idps ?? {})
  const idp = Object.values(idps)[0] ?? (await startOne(fileIdp))
  if (!options.idps) idps.default = idp
  options.front?.forwardTo(idp.port)
  const upstream = await startRecordingUpstream(
    options.inspectTokens ? { inspect: tokenInspector(idp.issuer) } : {}
  )
  const secret = randomBytes(32).toString('base64url')
  let offsetMs = 0
  const now = () => Date.now() + offsetMs
  const redisPrefix = `bff-test-${randomBytes(6).toString('hex')}:`
  const env: Record<string, string | undefined> = {
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: baseUrl,
    BFF_SESSION_SECRET: secret,
    BFF_SESSION_STORE: store,
    BFF_REDIS_PREFIX: redisPrefix,
    BFF_API: `/api/=${upstream.url}/`,
    ...options.env,
  }
  let configDir: string | undefined
  if (options.configFile) {
    const issuers = Object.fromEntries(
      Object.entries(idps).map(([name, one]) => [name, one.issuer])
    )
    const json = JSON.stringify(
      options.configFile({ issuer: idp.issuer, upstream: upstream.url, issuers })
    )
    for (const name of [
      'BFF_ISSUER',
      'BFF_CLIENT_ID',
      'BFF_CLIENT_SECRET',
      'BFF_SCOPES',
      'BFF_API',
    ]) {
      env[name] = undefined
    }
    if (TARGET === 'workerd') env.BFF_CONFIG = json
    else {
      configDir = await mkdtemp(path.join(tmpdir(), 'bff-config-'))
      env.BFF_CONFIG = path.join(configDir, 'bff.json')
      await writeFile(env.BFF_CONFIG, json)
    }
  }
  let bff: Awaited<ReturnType<typeof startNodeBff>>
  try {
    bff =
      TARGET === 'workerd'
        ? await startWorkerBff(
            port,
            env,
            () => offsetMs,
            options.isolates ?? 0,
            options.serviceBindings
          )
        : await startNodeBff(port, env, store, now, redisPrefix, options.sessionEnds)
  } catch (err) {
    await Promise.all([...Object.values(idps).map((one) => one.stop()), upstream.close()]).catch(
      () => {}
    )
    throw err
  }

  const cookieName = baseUrl.startsWith('https:') ? '__Host-bff' : 'bff'
  let oidcConfig: Promise<client.Configuration> | undefined

  return {
    url,
    baseUrl,
    target: TARGET,
    isolateUrls: bff.isolateUrls ?? [],
    logs: () => bff.logs,
    publishEnd: (end) => bff.publishEnd(end),
    async objectListeners(sessionId) {
      if (!bff.listening) throw new Error('objectListeners needs the workerd target')
      return bff.listening(sessionId)
    },
    idp,
    idps,
    upstream,
    store,
    secret,
    advance(seconds) {
      offsetMs += seconds * 1000
    },
    jar: () => createCookieJar({ baseUrl: url }),
    async login(jar, { user = 'alice', returnTo = '/', prompt, idp: name, headers } = {}) {
      const query = new URLSearchParams({ returnTo })
      if (prompt) query.set('prompt', prompt)
      if (name) query.set('idp', name)
      const start = await jar.get(`/bff/login?${query}`)
      if (start.status !== 302) throw new Error(`/bff/login answered ${start.status}`)
      const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
        login: user,
        password: 'pass',
      })
      // The IdP sends the browser to the public base URL; the test reaches the BFF on loopback.
      const callback = new URL(redirectLocation(atIdp)!)
      return jar.get(`${url}${callback.pathname}${callback.search}`, { headers })
    },
    async sessionOf(jar) {
      const cookies = jar.cookies(url)
      let sealed = cookies[cookieName]
      if (!sealed) return null
      for (let i = 1; cookies[`${cookieName}.${i}`]; i++) sealed += cookies[`${cookieName}.${i}`]
      const ref = await openSessionCookie(sealed, secret)
      if (!ref) return null
      return 'session' in ref ? cookieStore({ now }).get(ref) : bff.readSession(ref)
    },
    async introspect(token) {
      oidcConfig ??= client.discovery(
        new URL(idp.issuer),
        DEMO_BFF_CLIENT.clientId,
        DEMO_BFF_CLIENT.clientSecret,
        undefined,
        { execute: [client.allowInsecureRequests] }
      )
      const result = await client.tokenIntrospection(await oidcConfig, token)
      return { active: result.active, sub: result.sub }
    },
    async close() {
      await bff.close()
      await upstream.close()
      await Promise.all(Object.values(idps).map((one) => one.stop()))
      if (configDir) await rm(configDir, { recursive: true, force: true })
    },
  }
}

/** A running BFF: how to stop it and how to read a server-side session the way it would. */
interface RunningBff {
  readSession(ref: SessionRef): Promise<Session | null>
  close(): Promise<void>
  isolateUrls?: string[]
  logs: string[]
  publishEnd(end: SessionEnd): Promise<void>
  listening?(sessionId: string): Promise<number>
}

async function startNodeBff(
  port: number,
  env: Env,
  store: StoreKind,
  now: () => number,
  redisPrefix: string,
  sessionEnds?: SessionEndBus
): Promise<RunningBff> {
  let redis: Redis | undefined
  const captured = captureLog()
  let serverStore: SessionStore | undefined
  if (store === 'memory') serverStore = memoryStore({ now })
  // The redis store, or cookie mode with Redis behind it for sessions too large for the cookie.
  if (store === 'redis' || (store === 'cookie' && env.BFF_REDIS_URL)) {
    redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
    serverStore = redisStore(redis, { prefix: redisPrefix, now })
  }

  const bff = await startNode(
    { PORT: String(port), ...env },
    {
      serveStatic: false,
      deps: {
        now,
        log: captured.log,
        ...(sessionEnds ? { sessionEnds } : {}),
        // The memory store must be the test's own instance to be inspected; Redis is shared anyway.
        ...(store === 'memory' ? { store: serverStore } : {}),
      },
    }
  )

  return {
    readSession: (ref) => serverStore!.get(ref),
    logs: captured.lines,
    async publishEnd(end) {
      if (!sessionEnds) throw new Error('publishEnd needs the stack\'s "sessionEnds" on Node')
      await sessionEnds.publish(end)
    },
    async close() {
      await bff.close()
      if (redis) {
        const keys: string[] = []
        let cursor = '0'
        do {
          const [next, batch] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 500)
          cursor = next
          keys.push(...batch)
        } while (cursor !== '0')
        if (keys.length) await redis.del(...keys)
        await redis.quit()
      }
    },
  }
}

/**
 * The Worker in workerd: the same settings as bindings, the test clock as the `BFF_TEST_CLOCK`
 * service binding, sessions read from their Durable Objects.
 */
async function startWorkerBff(
  port: number,
  env: Env,
  clockOffsetMs: () => number,
  isolates: number,
  serviceBindings?: Record<string, unknown>
): Promise<RunningBff> {
  // Loaded only here, so the Node target never starts Miniflare's machinery.
  const { startWorkerd } = await import('../adapters/workers/workerd.ts')
  const names = Array.from({ length: isolates }, (_, i) => `isolate-${i + 1}`)
  const worker = await startWorkerd({
    port,
    env,
    clockOffsetMs,
    isolates: names,
    serviceBindings: serviceBindings as never,
  })
  return {
    readSession: async (ref) => ('id' in ref ? worker.readSession(ref.id) : null),
    close: () => worker.close(),
    logs: worker.logs,
    publishEnd: (end) => worker.announce(end),
    listening: (id) => worker.listening(id),
    isolateUrls: await Promise.all(names.map((name) => worker.urlOf(name))),
  }
}

/** Headers the SPA sends on every API call. */
export const CSRF = { 'x-csrf': '1' } as const
