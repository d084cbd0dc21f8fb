/**
 * The first request of a session on an instance, against its second: the session manager's
 * `load` (open the cookie, read the store) for BENCH_COLD_SESSIONS sessions this instance has never
 * seen, then for the same sessions again, per store and cookie form. The difference is what a
 * session costs where a load balancer sends it to an instance it has not met yet. Through a Hono
 * app's `request`, so both passes carry the same per-request overhead. Prints one JSON line per
 * case; `npx tsx bench/cold-session.ts` (Redis on 127.0.0.1:6379 for the `redis` cases).
 */
import { Hono } from 'hono'
import { Redis } from 'ioredis'
import { randomBytes } from 'node:crypto'
import { nodeHmac, nodeSealer } from '../src/adapters/node/crypto.ts'
import { redisStore } from '../src/adapters/node/redis-store.ts'
import type { BffEnv } from '../src/core/hono-env.ts'
import { EXPIRED_COOKIE_GRACE_SECONDS, createSessionManager } from '../src/core/session/manager.ts'
import { packRef } from '../src/core/session/packed-session.ts'
import { createSealer, type Sealer } from '../src/core/session/seal.ts'
import {
  createSessionCookies,
  sealedSessionCookies,
  type SessionCookies,
} from '../src/core/session/session-cookie.ts'
import { cookieStore } from '../src/core/session/stores/cookie.ts'
import { memoryStore } from '../src/core/session/stores/memory.ts'
import type { Session, SessionStore } from '../src/core/session/types.ts'
import { makeSession } from '../src/testing/sessions.ts'

const COUNT = Number(process.env.BENCH_COLD_SESSIONS ?? 2000)
const SECRET = randomBytes(32).toString('base64url')
/** As the BFF writes its cookies: they outlive the session by this grace. */
const GRACE = { graceSeconds: EXPIRED_COOKIE_GRACE_SECONDS }

type Form = 'sealed id' | 'compact id' | 'sealed session' | 'packed session'
interface Case {
  store: 'memory' | 'redis' | 'cookie'
  form: Form
  crypto: 'webcrypto' | 'node'
}

const CASES: Case[] = [
  { store: 'memory', form: 'sealed id', crypto: 'webcrypto' },
  { store: 'memory', form: 'compact id', crypto: 'webcrypto' },
  { store: 'memory', form: 'compact id', crypto: 'node' },
  { store: 'redis', form: 'sealed id', crypto: 'webcrypto' },
  { store: 'redis', form: 'compact id', crypto: 'webcrypto' },
  { store: 'redis', form: 'compact id', crypto: 'node' },
  { store: 'cookie', form: 'sealed session', crypto: 'webcrypto' },
  { store: 'cookie', form: 'packed session', crypto: 'webcrypto' },
  { store: 'cookie', form: 'packed session', crypto: 'node' },
]

/** A session shaped like a login's: tokens and an ID token of the usual lengths. */
function loginSession(): Session {
  const t = Math.floor(Date.now() / 1000)
  const session = makeSession({
    idp: 'default',
    scope: 'openid profile email offline_access',
    idToken: `eyJhbGciOiJSUzI1NiJ9.${randomBytes(450).toString('base64url')}.${randomBytes(256).toString('base64url')}`,
    accessTokenLifetime: 300,
    createdAtMs: t * 1000,
    absoluteExpiresAt: t + 43_200,
  })
  session.claims = { ...session.claims, sub: session.sub, sid: session.sid, acr: '0', auth_time: t }
  return session
}

async function run(c: Case, redis: Redis | undefined): Promise<Record<string, unknown>> {
  const prefix = `bff-bench-cold-${randomBytes(4).toString('hex')}:`
  const store: SessionStore =
    c.store === 'memory'
      ? memoryStore({ maxSessions: COUNT * 2 })
      : c.store === 'redis'
        ? redisStore(redis!, { prefix })
        : cookieStore()
  const sealer: Sealer = c.crypto === 'node' ? nodeSealer([SECRET]) : createSealer([SECRET])
  const cookies: SessionCookies =
    c.form === 'sealed id'
      ? sealedSessionCookies(sealer)
      : createSessionCookies(sealer, [SECRET], c.crypto === 'node' ? { hmac: nodeHmac } : {})

  // The cookies, made by another instance (a sealer of its own): none is in this one's memory.
  const maker = createSealer([SECRET])
  const makerCookies = createSessionCookies(maker, [SECRET])
  const values: string[] = []
  for (let i = 0; i < COUNT; i++) {
    const session = loginSession()
    const ref = await store.set(session)
    if (c.form === 'sealed id') values.push(await maker.seal({ id: session.id }, 3600, GRACE))
    else if (c.form === 'compact id') {
      values.push(await makerCookies.idValue(session.id, 3600, GRACE))
    } else if (c.form === 'sealed session') values.push(await maker.seal(ref, 3600, GRACE))
    else values.push(await maker.seal(packRef(ref), 3600, GRACE))
  }

  const sessions = createSessionManager({
    store,
    sealer,
    cookies,
    baseUrl: 'http://bff.test',
    idleTimeoutSeconds: 3600,
  })
  const app = new Hono<BffEnv>()
  app.get('/', async (ctx) => {
    const session = await sessions.load(ctx)
    if (!session) throw new Error('a session did not load')
    return ctx.text('ok')
  })
  const pass = async () => {
    const cpu = process.cpuUsage()
    const started = performance.now()
    for (const value of values) await app.request('/', { headers: { cookie: `bff=${value}` } })
    const wallUs = ((performance.now() - started) * 1000) / COUNT
    const used = process.cpuUsage(cpu)
    return { wallUs, cpuUs: (used.user + used.system) / COUNT }
  }
  const first = await pass()
  const second = await pass()
  if (redis) {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      if (keys.length) await redis.del(...keys)
    } while (cursor !== '0')
  }
  return {
    ...c,
    sessions: COUNT,
    cookieBytes: Math.round(values.reduce((sum, v) => sum + v.length, 0) / COUNT),
    firstUs: Math.round(first.wallUs),
    secondUs: Math.round(second.wallUs),
    firstExtraUs: Math.round(first.wallUs - second.wallUs),
    firstCpuUs: Math.round(first.cpuUs),
    secondCpuUs: Math.round(second.cpuUs),
  }
}

const only = process.argv[2]
let redis: Redis | undefined
try {
  if (!only || only === 'redis') {
    redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
  }
  for (const c of CASES) {
    if (only && c.store !== only) continue
    console.log(JSON.stringify(await run(c, redis)))
  }
} finally {
  await redis?.quit()
}
