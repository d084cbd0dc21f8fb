/**
 * The BFFs under test, one per store, each a child process running `startNode` as production
 * does, with a real login through the IdP; and what the bench does with a store besides loading it
 * (the refresh storm, Redis housekeeping).
 */
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { DEMO_BFF_CLIENT, bffClientMetadata, type Idp } from '../src/demo/idp.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../test/helpers/http.ts'
import { loginAtIdp } from '../test/helpers/idp-login.ts'
import { freePort } from '../test/helpers/upstream.ts'
import { builtEntry } from './built.ts'
import { startChild, type Child } from './child.ts'
import { CSRF, percentile, round, timedGet, type Target } from './load.ts'

export const here = (file: string) => fileURLToPath(new URL(file, import.meta.url))
// BENCH_PROFILE=<dir>: the proxies write V8 CPU profiles there (a development aid).
export const PROFILE = process.env.BENCH_PROFILE
const STORM_CALLS = 200
// The load never needs a refresh: 15 minutes, a common production lifetime, is far more than the
// login of each slice of load is used for.
export const ACCESS_TOKEN_TTL = 900
export const REDIS_URL = 'redis://127.0.0.1:6379'
/** `cluster`: the `redis` store on a Redis Cluster of the bench's own (bench/redis-cluster.ts). */
export type StoreKind = 'cookie' | 'memory' | 'redis' | 'cluster'
export const LETTER: Record<StoreKind, string> = {
  cookie: 'c',
  memory: 'd',
  redis: 'e',
  cluster: "e'",
}
/** The row name of a store's BFF: (e') is the `redis` store too, on the cluster. */
export const storeName = (store: StoreKind) =>
  store === 'cluster' ? 'Redis Cluster' : `${store} store`

export interface Storm {
  calls: number
  refreshGrants: number
  statuses: Record<string, number>
  p50Ms: number
  p99Ms: number
  maxMs: number
}

export async function login(bffUrl: string, user: string): Promise<CookieJar> {
  const jar = createCookieJar({ baseUrl: bffUrl })
  const start = await jar.get('/bff/login?returnTo=/')
  if (start.status !== 302) throw new Error(`/bff/login answered ${start.status}`)
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, { login: user, password: 'pass' })
  const done = await jar.follow(atIdp)
  if (done.status !== 302) throw new Error(`/bff/callback answered ${done.status}`)
  return jar
}

export const cookieHeader = (jar: CookieJar, url: string) =>
  Object.entries(jar.cookies(url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')

/** 200 concurrent calls of one session whose access token expired: one grant must serve them all. */
export async function refreshStorm(
  bff: Child,
  url: string,
  idp: Idp,
  user: string
): Promise<Storm> {
  const jar = await login(url, user)
  const headers = { ...CSRF, cookie: cookieHeader(jar, url) }
  const warm = await timedGet(`${url}/api/storm`, headers)
  if (warm.status !== 200) throw new Error(`the storm session answered ${warm.status}`)
  // Past the access token's lifetime (and within the idle timeout): every call needs a refresh.
  await bff.call('advance', { seconds: ACCESS_TOKEN_TTL + 1 })
  const before = idp.grants.refresh
  const results = await Promise.all(
    Array.from({ length: STORM_CALLS }, (_, i) => timedGet(`${url}/api/storm/${i}`, headers))
  )
  const grants = idp.grants.refresh - before
  const statuses: Record<string, number> = {}
  for (const { status } of results) statuses[status] = (statuses[status] ?? 0) + 1
  const ms = results.map((r) => r.ms).sort((a, b) => a - b)
  return {
    calls: STORM_CALLS,
    refreshGrants: grants,
    statuses,
    p50Ms: round(percentile(ms, 50)),
    p99Ms: round(percentile(ms, 99)),
    maxMs: round(ms.at(-1)!),
  }
}

export async function redisAvailable(): Promise<boolean> {
  const client = new Redis(REDIS_URL, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  client.on('error', () => {})
  try {
    await client.connect()
    return (await client.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

export async function deleteRedisKeys(prefix: string): Promise<number> {
  const client = new Redis(REDIS_URL)
  let deleted = 0
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500)
      cursor = next
      if (keys.length) deleted += await client.del(...keys)
    } while (cursor !== '0')
  } finally {
    await client.quit()
  }
  return deleted
}

/** A BFF with one store, running, and what to load it with. */
export interface StoreUnderTest {
  store: StoreKind
  bff: Child
  url: string
  target: Target<StoreKind | 'traced'>
  secret: string
  /** The cookies of the last login, for the memory measurement. */
  lastJar(): CookieJar | undefined
  stop(): Promise<void>
}

export async function startStore(
  store: StoreKind,
  idp: Idp,
  upstream: Child,
  /** `--tracing`: this BFF exports its spans to the sink at this URL. */
  otlpSink?: string,
  /** Tells this BFF's IdP client apart from another BFF's of the same store. */
  variant = '',
  more: {
    /** The BFF's entry, when not this checkout's bench/bff-server.ts (compare.ts: another's). */
    file?: string
    /** The `cluster` store's seed list (bench/redis-cluster.ts). */
    clusterSeeds?: string
    /** More Node flags for the BFF's process. */
    execArgv?: string[]
  } = {}
): Promise<StoreUnderTest> {
  if (store === 'cluster' && !more.clusterSeeds) {
    throw new Error('the cluster store needs a running Redis Cluster (bench/redis-cluster.ts)')
  }
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // A client of its own: the BFFs of all stores run at once, each with its own redirect URI.
  const clientId = `bench-${otlpSink ? 'traced' : store}${variant}`
  await idp.addClient(
    bffClientMetadata({
      redirectUris: [`${url}/bff/callback`],
      clientId,
      clientSecret: DEMO_BFF_CLIENT.clientSecret,
    })
  )
  const secret = randomBytes(32).toString('base64url')
  const redisPrefix = `bff-bench-${randomBytes(6).toString('hex')}:`
  const env: Record<string, string> = {
    PORT: String(port),
    HOST: '127.0.0.1',
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: url,
    BFF_SESSION_SECRET: secret,
    BFF_SESSION_STORE: store === 'cluster' ? 'redis' : store,
    BFF_API: `/api/=${upstream.url}/`,
    ...(store === 'redis' ? { BFF_REDIS_URL: REDIS_URL, BFF_REDIS_PREFIX: redisPrefix } : {}),
    // As docs/configuration.md sets a Cluster: the seed list, every node of it here.
    ...(store === 'cluster'
      ? {
          BFF_REDIS_MODE: 'cluster',
          BFF_REDIS_URL: more.clusterSeeds!,
          BFF_REDIS_PREFIX: redisPrefix,
        }
      : {}),
    // BENCH_BFF_SETTINGS (JSON): more settings for every BFF, e.g. BFF_METRICS_TOKEN, to measure
    // what a feature costs against a run without it.
    ...(JSON.parse(process.env.BENCH_BFF_SETTINGS ?? '{}') as Record<string, string>),
    ...(otlpSink ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlpSink } : {}),
  }
  const bff = await startChild(await builtEntry(more.file ?? here('./bff-server.ts')), {
    env: { NODE_ENV: 'production', BENCH_BFF_ENV: JSON.stringify(env) },
    execArgv: [
      ...(PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE}`] : []),
      ...(more.execArgv ?? []),
    ],
  })
  let jar: CookieJar | undefined
  let logins = 0
  // A fresh session for each slice of load, checked once.
  const freshSession = async () => {
    jar = await login(url, `${clientId}-${logins++}`)
    const headers = { ...CSRF, cookie: cookieHeader(jar, url) }
    const check = await timedGet(`${url}/api/items`, headers)
    if (check.status !== 200) throw new Error(`the ${store} BFF answered ${check.status}`)
    return headers
  }
  return {
    store,
    bff,
    url,
    secret,
    target: {
      key: otlpSink ? 'traced' : store,
      name: otlpSink ? `(f) BFF, ${store}, traced` : `(${LETTER[store]}) BFF, ${storeName(store)}`,
      url: `${url}/api/items`,
      headers: freshSession,
      server: bff,
    },
    lastJar: () => jar,
    async stop() {
      await bff.stop()
      // The cluster's keys go with the cluster (bench/redis-cluster.ts).
      if (store === 'redis') await deleteRedisKeys(redisPrefix)
    },
  }
}
