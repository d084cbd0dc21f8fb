/**
 * Two BFF instances behind one origin on a real Redis Cluster (BFF_REDIS_MODE=cluster, the seed
 * list in BFF_REDIS_URL), with the real IdP: one refresh grant per expiry across the instances
 * (the refresh lock and its published result on the cluster), a back-channel logout through the
 * cluster layout's indexes, and cookie mode's shared revocations.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { openSessionCookie } from '../helpers/session-cookie.ts'
import type { Session } from '../../src/core/session/types.ts'
import type { CookieJar } from '../helpers/http.ts'
import { confirmIdpLogout } from '../helpers/idp-login.ts'
import { useRedisCluster } from '../helpers/redis-cluster-run.ts'
import { startCluster, type Cluster } from '../cluster/cluster.ts'
import { readSse } from '../helpers/sse.ts'

const CSRF = { 'x-csrf': '1' }
const local = useRedisCluster()
let bffs: Cluster | undefined
afterEach(async () => {
  await bffs?.close()
  bffs = undefined
})

function onCluster(env: Record<string, string> = {}) {
  return startCluster({
    env: {
      BFF_SESSION_STORE: 'redis',
      BFF_REDIS_MODE: 'cluster',
      BFF_REDIS_URL: local.cluster().seeds,
      ...env,
    },
  })
}

function cookieHeader(c: Cluster, jar: CookieJar): string {
  return Object.entries(jar.cookies(c.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

async function storedSession(c: Cluster, jar: CookieJar): Promise<Session | null> {
  const ref = (await openSessionCookie(jar.cookies(c.url).bff!, c.secret)) as { id: string } | null
  const raw = await local.redis().get(`${c.redisPrefix}{session:${ref!.id}}`)
  return raw === null ? null : (JSON.parse(raw) as Session)
}

async function statusOnEach(c: Cluster, cookie: string, path = '/bff/user'): Promise<number[]> {
  return Promise.all(
    c.instances.map(async (instance) => {
      const response = await fetch(`${instance.url}${path}`, { headers: { ...CSRF, cookie } })
      await response.arrayBuffer()
      return response.status
    })
  )
}

describe('the BFF on a Redis Cluster', () => {
  it('a logout on one instance ends the event stream on the other within 1 s (pub/sub)', async () => {
    bffs = await onCluster()
    const jar = bffs.jar()
    await bffs.login(jar)
    const cookie = cookieHeader(bffs, jar)
    const response = await fetch(`${bffs.instances[1]!.url}/bff/events`, {
      headers: { ...CSRF, cookie },
    })
    expect(response.status).toBe(200)
    const stream = readSse(response)
    await stream.next('comment')
    const start = performance.now()
    const logout = await fetch(`${bffs.instances[0]!.url}/bff/logout`, {
      method: 'POST',
      headers: { ...CSRF, cookie },
      redirect: 'manual',
    })
    expect(logout.status).toBe(302)
    const ended = await stream.next('session_ended', 3000)
    expect(JSON.parse(ended.data)).toEqual({ reason: 'logout' })
    expect(ended.at - start).toBeLessThan(1000)
    await stream.ended
  })

  it('two instances, 50 concurrent calls each with an expired token: one refresh grant', async () => {
    bffs = await onCluster()
    const jar = bffs.jar()
    await bffs.login(jar)
    expect((await storedSession(bffs, jar))!.generation).toBe(1)
    bffs.idp.resetCounters()
    bffs.advance(120)
    const cookie = cookieHeader(bffs, jar)
    const calls = bffs.instances.flatMap((instance) =>
      Array.from({ length: 50 }, async (_, i) => {
        const response = await fetch(`${instance.url}/api/burst/${i}`, {
          headers: { ...CSRF, cookie },
        })
        await response.arrayBuffer()
        return response.status
      })
    )
    expect(await Promise.all(calls)).toEqual(Array(100).fill(200))
    expect(bffs.idp.grants.refresh).toBe(1)
    const tokens = new Set(bffs.upstream.requests.slice(-100).map((r) => r.headers.authorization))
    expect(tokens.size).toBe(1)
    expect((await storedSession(bffs, jar))!.generation).toBe(2)
  })

  it('a back-channel logout ends the session on every instance', async () => {
    bffs = await onCluster()
    const jar = bffs.jar()
    await bffs.login(jar)
    const other = bffs.jar()
    await bffs.login(other, 'bob')
    const cookie = cookieHeader(bffs, jar)
    expect(await statusOnEach(bffs, cookie)).toEqual([200, 200])
    bffs.idp.resetCounters()
    await confirmIdpLogout(jar, `${bffs.idp.issuer}/session/end`)
    expect(bffs.idp.backchannel).toEqual({ success: 1, error: 0 })
    expect(await storedSession(bffs, jar)).toBeNull()
    expect(await statusOnEach(bffs, cookie)).toEqual([401, 401])
    expect(await statusOnEach(bffs, cookieHeader(bffs, other))).toEqual([200, 200])
  })

  it('cookie mode: a logout at one instance is refused by every instance', async () => {
    bffs = await onCluster({ BFF_SESSION_STORE: 'cookie' })
    const jar = bffs.jar()
    await bffs.login(jar)
    const copied = cookieHeader(bffs, jar)
    expect(await statusOnEach(bffs, copied, '/api/before')).toEqual([200, 200])
    const logout = await fetch(`${bffs.instances[0]!.url}/bff/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...CSRF, cookie: copied },
    })
    expect(logout.status).toBe(302)
    expect(await statusOnEach(bffs, copied)).toEqual([401, 401])
  })
})
