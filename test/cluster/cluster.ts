/**
 * Several BFF instances behind one origin (a round-robin balancer), sharing Redis, with the real
 * IdP: for cluster-wide refresh, restarts and secret rotation. Node-only by nature.
 */
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  DEMO_BFF_CLIENT,
  bffClientMetadata,
  startIdp,
  type Idp,
  type IdpOptions,
} from '../../src/demo/idp.ts'
import type { Env } from '../../src/core/config/env.ts'
import { startNode, type NodeServer } from '../../src/adapters/node/server.ts'
import { startBalancer, type Balancer } from '../helpers/balancer.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { openSessionCookie } from '../helpers/session-cookie.ts'
import type { Session } from '../../src/core/session/types.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

export interface Cluster {
  /** The one public origin (the balancer). */
  url: string
  idp: Idp
  upstream: RecordingUpstream
  redis: Redis
  redisPrefix: string
  /** The first session secret the instances started with. */
  secret: string
  instances: NodeServer[]
  advance(seconds: number): void
  jar(): CookieJar
  login(jar: CookieJar, user?: string): Promise<void>
  /** The jar's session as the instances store it (from its cookie, or Redis for the `redis` store). */
  session(jar: CookieJar): Promise<Session>
  /** Stops instance `index` and starts it again, optionally with other settings. */
  restart(index: number, env?: Env): Promise<void>
  close(): Promise<void>
}

export interface ClusterOptions {
  instances?: number
  env?: Env
  /** IdP settings beyond the defaults (60 s access tokens). */
  idp?: Partial<IdpOptions>
  /** fetch the instances use for IdP calls, e.g. to inject faults. */
  idpFetch?: typeof fetch
  /**
   * A config file (BFF_CONFIG) made from the cluster's IdP and upstream, in place of the IdP and
   * BFF_API settings.
   */
  configFile?: (parts: { issuer: string; upstream: string }) => unknown
  /** More metadata of the BFF's client at the IdP, e.g. `{ dpop_bound_access_tokens: true }`. */
  clientMetadata?: Record<string, unknown>
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const balancer: Balancer = await startBalancer()
  const url = balancer.url
  const fileIdps = options.configFile?.({ issuer: 'http://x', upstream: 'http://x' })
  const fileIdp = Object.keys((fileIdps as { idps?: object } | undefined)?.idps ?? {})[0] ?? 'none'
  const idp = await startIdp({
    accessTokenTtl: 60,
    ...options.idp,
    // A config file's IdP answers at /bff/callback/<name>; the settings' at /bff/callback.
    clients: [
      {
        ...bffClientMetadata({
          redirectUris: [`${url}/bff/callback`, `${url}/bff/callback/${fileIdp}`],
        }),
        ...options.clientMetadata,
      },
    ],
  })
  const upstream = await startRecordingUpstream()
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true })
  await redis.connect()
  const redisPrefix = `bff-test-${randomBytes(6).toString('hex')}:`
  let offsetMs = 0
  const now = () => Date.now() + offsetMs
  const baseEnv: Record<string, string | undefined> = {
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: url,
    BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
    BFF_SESSION_STORE: 'redis',
    BFF_REDIS_PREFIX: redisPrefix,
    BFF_API: `/api/=${upstream.url}/`,
    ...options.env,
  }
  let configDir: string | undefined
  if (options.configFile) {
    for (const name of ['BFF_ISSUER', 'BFF_CLIENT_ID', 'BFF_CLIENT_SECRET', 'BFF_API']) {
      baseEnv[name] = undefined
    }
    configDir = await mkdtemp(path.join(tmpdir(), 'bff-cluster-config-'))
    baseEnv.BFF_CONFIG = path.join(configDir, 'bff.json')
    const file = options.configFile({ issuer: idp.issuer, upstream: upstream.url })
    await writeFile(baseEnv.BFF_CONFIG, JSON.stringify(file))
  }
  const envs: Env[] = []
  const start = (env: Env) =>
    startNode(
      { ...env, PORT: '0' },
      {
        serveStatic: false,
        deps: { now, log: () => {}, ...(options.idpFetch ? { fetch: options.idpFetch } : {}) },
      }
    )
  const instances: NodeServer[] = []
  for (let i = 0; i < (options.instances ?? 2); i++) {
    envs.push(baseEnv)
    instances.push(await start(baseEnv))
  }
  instances.forEach((instance, i) => balancer.setTarget(i, instance.url))

  return {
    url,
    idp,
    upstream,
    redis,
    redisPrefix,
    secret: baseEnv.BFF_SESSION_SECRET!,
    instances,
    advance(seconds) {
      offsetMs += seconds * 1000
    },
    jar: () => createCookieJar({ baseUrl: url }),
    async login(jar, user = 'alice') {
      const start = await jar.get('/bff/login?returnTo=/')
      const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
        login: user,
        password: 'pass',
      })
      const done = await jar.follow(atIdp)
      if (done.status !== 302) throw new Error(`callback answered ${done.status}`)
    },
    async session(jar) {
      const ref = await openSessionCookie(jar.cookies(url).bff!, baseEnv.BFF_SESSION_SECRET!)
      if (ref && 'session' in ref) return ref.session
      return JSON.parse((await redis.get(`${redisPrefix}session:${ref!.id}`))!) as Session
    },
    async restart(index, env = {}) {
      await instances[index]!.close()
      envs[index] = { ...envs[index], ...env }
      instances[index] = await start(envs[index]!)
      balancer.setTarget(index, instances[index]!.url)
    },
    async close() {
      await balancer.close()
      for (const instance of instances) await instance.close()
      await upstream.close()
      await idp.stop()
      if (configDir) await rm(configDir, { recursive: true, force: true })
      let cursor = '0'
      do {
        const [nextCursor, keys] = await redis.scan(
          cursor,
          'MATCH',
          `${redisPrefix}*`,
          'COUNT',
          500
        )
        cursor = nextCursor
        if (keys.length) await redis.del(...keys)
      } while (cursor !== '0')
      await redis.quit()
    },
  }
}
