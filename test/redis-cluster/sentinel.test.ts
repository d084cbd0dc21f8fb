/**
 * The BFF through Redis Sentinel (BFF_REDIS_MODE=sentinel): a primary and its replica watched by a
 * sentinel, two BFF instances, and the primary killed under load. The sentinel promotes the
 * replica after 1 s; ioredis asks the sentinels for the new primary. Every answer is 200 or 503
 * `store_unavailable`, sessions from before survive, and the in-process cache follows: it tracks
 * the new primary, and a logout at one instance is seen at once by the other.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connectRedis, firstConnection } from '../../src/adapters/node/redis-connect.ts'
import { redisStore } from '../../src/adapters/node/redis-store.ts'
import { sleep } from '../../src/testing/store-contract.ts'
import type { CookieJar } from '../helpers/http.ts'
import { describeOutcome, underLoad } from '../helpers/failover-load.ts'
import { startRedisSentinel, type LocalSentinel } from '../helpers/redis-cluster.ts'
import { startCluster, type Cluster as Bffs } from '../cluster/cluster.ts'

const CSRF = { 'x-csrf': '1' }
let sentinel: LocalSentinel
let bffs: Bffs
let jars: CookieJar[]
let writer: Redis

beforeAll(async () => {
  sentinel = await startRedisSentinel()
  bffs = await startCluster({
    idp: { accessTokenTtl: 3600 },
    env: {
      BFF_SESSION_STORE: 'redis',
      BFF_REDIS_MODE: 'sentinel',
      BFF_REDIS_URL: sentinel.urls,
      BFF_REDIS_SENTINEL_NAME: sentinel.name,
    },
  })
  jars = []
  for (let i = 0; i < 4; i++) {
    const jar = bffs.jar()
    await bffs.login(jar, `user${i}`)
    jars.push(jar)
  }
  writer = connectRedis({
    redisMode: 'sentinel',
    redisUrl: sentinel.urls,
    redisSentinelName: sentinel.name,
  }) as Redis
  await firstConnection(writer)
}, 60_000)

afterAll(async () => {
  writer?.disconnect()
  await bffs?.close()
  await sentinel?.stop()
})

function cookieHeader(jar: CookieJar): string {
  return Object.entries(jar.cookies(bffs.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

/** Clients of the node on `port` with key tracking on (CLIENT LIST flag `t`). */
async function trackingClients(port: number): Promise<number> {
  const node = new Redis(port, { lazyConnect: true })
  await node.connect()
  try {
    const list = (await node.client('LIST')) as string
    return list.split('\n').filter((line) => /\bflags=\S*t/.test(line)).length
  } finally {
    node.disconnect()
  }
}

describe('Redis Sentinel', () => {
  it('reads and writes the primary the sentinels name, with the cache tracking it', async () => {
    expect(await sentinel.currentPrimary()).toBe(`127.0.0.1:${sentinel.primary.port}`)
    expect(await sentinel.primary.cli('DBSIZE')).not.toBe('0')
    expect(await trackingClients(sentinel.primary.port)).toBe(2)
  })

  it('the primary killed under load: only 200 or 503 in the window, sessions survive', async () => {
    const store = redisStore(writer, { prefix: `sentinel-${crypto.randomUUID().slice(0, 8)}:` })
    const old = sentinel.primary
    const outcome = await underLoad({
      jars,
      store,
      failover: () => old.kill(),
      async recovered() {
        while ((await sentinel.currentPrimary()) === `127.0.0.1:${old.port}`) await sleep(50)
      },
    })
    console.info(describeOutcome('Sentinel, primary killed', outcome))
    expect(await sentinel.currentPrimary()).toBe(`127.0.0.1:${sentinel.replica.port}`)
    expect(outcome.failed).toBeGreaterThan(0)
    expect([...outcome.statuses.keys()].every((s) => s === 200 || s === 503)).toBe(true)
    expect([...outcome.errors].every((e) => e === 'store_unavailable')).toBe(true)
    expect(outcome.windowMs).toBeLessThan(10_000)
    expect(outcome.lost).toBeLessThanOrEqual(5)
    for (const jar of jars) {
      expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
    }
  })

  it('after the failover, the cache tracks the new primary: a logout is seen at once', async () => {
    const until = Date.now() + 5000
    while ((await trackingClients(sentinel.replica.port)) < 2 && Date.now() < until) {
      await sleep(50)
    }
    expect(await trackingClients(sentinel.replica.port)).toBe(2)
    const cookie = cookieHeader(jars[0]!)
    const [a, b] = bffs.instances.map((instance) => instance.url)
    // Instance b holds the session in its cache ...
    for (let i = 0; i < 3; i++) {
      expect((await fetch(`${b}/bff/user`, { headers: { ...CSRF, cookie } })).status).toBe(200)
    }
    // ... until a logs it out.
    const logout = await fetch(`${a}/bff/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...CSRF, cookie },
    })
    expect(logout.status).toBe(302)
    expect((await fetch(`${b}/bff/user`, { headers: { ...CSRF, cookie } })).status).toBe(401)
  })
})
