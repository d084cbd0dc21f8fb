/**
 * A session's life across a cluster: two instances behind one origin sharing Redis. One refresh
 * grant per expiry in the whole cluster, takeover from a dead lock holder, restarts that lose
 * nothing, secret rotation, and refresh-token reuse ending the session cleanly.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createSealer } from '../../src/core/session/seal.ts'
import type { Session } from '../../src/core/session/types.ts'
import type { CookieJar } from '../helpers/http.ts'
import { confirmIdpLogout } from '../helpers/idp-login.ts'
import { startCluster, type Cluster } from './cluster.ts'
import { openSessionCookie } from '../helpers/session-cookie.ts'

const CSRF = { 'x-csrf': '1' }
// Each test starts a cluster and drives ~100 requests: generous on 2 cores shared with other suites.
vi.setConfig({ testTimeout: 30_000 })
let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

/** The Cookie header the browser would send, to address one instance directly. */
function cookieHeader(c: Cluster, jar: CookieJar): string {
  return Object.entries(jar.cookies(c.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

async function storedSession(c: Cluster, jar: CookieJar): Promise<Session> {
  const ref = (await openSessionCookie(jar.cookies(c.url).bff!, c.secret)) as { id: string }
  return JSON.parse((await c.redis.get(`${c.redisPrefix}session:${ref.id}`))!) as Session
}

function burst(c: Cluster, jar: CookieJar, perInstance: number) {
  const cookie = cookieHeader(c, jar)
  return Promise.all(
    c.instances.flatMap((instance) =>
      Array.from({ length: perInstance }, (_, i) =>
        fetch(`${instance.url}/api/burst/${i}`, { headers: { ...CSRF, cookie } }).then(
          async (response) => {
            await response.arrayBuffer() // an unread body keeps its connection busy
            return response
          }
        )
      )
    )
  )
}

describe('one refresh per cluster', () => {
  it('two instances, 50 concurrent calls each with an expired token: one refresh grant', async () => {
    cluster = await startCluster()
    const jar = cluster.jar()
    await cluster.login(jar)
    cluster.idp.resetCounters()
    cluster.advance(120)
    const responses = await burst(cluster, jar, 50)
    expect(responses.map((r) => r.status)).toEqual(Array(100).fill(200))
    expect(cluster.idp.grants.refresh).toBe(1)
    const tokens = new Set(
      cluster.upstream.requests.slice(-100).map((r) => r.headers.authorization)
    )
    expect(tokens.size).toBe(1)
    expect((await storedSession(cluster, jar)).generation).toBe(2)
  })

  it('takes over from a lock holder that died, without hanging', async () => {
    cluster = await startCluster({ env: { BFF_IDP_TIMEOUT: '1' } })
    const jar = cluster.jar()
    await cluster.login(jar)
    const session = await storedSession(cluster, jar)
    // An instance took the lock and died: nobody releases it; it expires in 1.5 s.
    await cluster.redis.set(`${cluster.redisPrefix}lock:${session.id}`, 'dead-holder', 'PX', 1500)
    cluster.idp.resetCounters()
    cluster.advance(120)
    const started = Date.now()
    const responses = await burst(cluster, jar, 10)
    const took = Date.now() - started
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200))
    expect(cluster.idp.grants.refresh).toBe(1)
    expect(took).toBeGreaterThan(1000)
    expect(took).toBeLessThan(6000)
  })
})

describe('restarts lose nothing', () => {
  it.each(['redis', 'cookie'])(
    'a %s session works after every instance restarted',
    async (store) => {
      cluster = await startCluster({ env: { BFF_SESSION_STORE: store } })
      const jar = cluster.jar()
      await cluster.login(jar)
      await cluster.restart(0)
      await cluster.restart(1)
      for (let i = 0; i < 4; i++) {
        // The balancer alternates, so both restarted instances answer.
        expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
        expect((await jar.get('/api/after-restart', { headers: CSRF })).status).toBe(200)
      }
    }
  )
})

describe('session secret rotation', () => {
  it('old cookies still unseal under "new,old" and are re-sealed with the new secret', async () => {
    cluster = await startCluster({ env: { BFF_SESSION_STORE: 'cookie' } })
    const jar = cluster.jar()
    await cluster.login(jar)
    const oldSecret = cluster.secret
    const newSecret = 'n'.repeat(20) + 'e'.repeat(20)
    await cluster.restart(0, { BFF_SESSION_SECRET: `${newSecret},${oldSecret}` })
    await cluster.restart(1, { BFF_SESSION_SECRET: `${newSecret},${oldSecret}` })

    const first = await jar.get('/bff/user', { headers: CSRF })
    expect(first.status).toBe(200)
    const resealed = jar.lastSetCookies.find((line) => line.startsWith('bff='))
    expect(resealed).toBeDefined()
    const cookie = jar.cookies(cluster.url).bff!
    expect(await createSealer([newSecret]).unseal(cookie)).not.toBeNull()
    expect(await createSealer([oldSecret]).unseal(cookie)).toBeNull()

    // Once every browser has been re-sealed, the old secret can go.
    await cluster.restart(0, { BFF_SESSION_SECRET: newSecret })
    await cluster.restart(1, { BFF_SESSION_SECRET: newSecret })
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)

    // A cookie sealed with a secret nobody knows is no session: 401, never a 500.
    const stranger = cluster.jar()
    stranger.setCookie(
      cluster.url,
      `bff=${await createSealer(['x'.repeat(40)]).seal({ id: 'x' }, 60)}`
    )
    expect((await stranger.get('/bff/user', { headers: CSRF })).status).toBe(401)
  })
})

describe('refresh token rotation and reuse', () => {
  it('stores the rotated token, and ends the session with 401 when the IdP reports reuse', async () => {
    cluster = await startCluster()
    const jar = cluster.jar()
    await cluster.login(jar)
    const before = await storedSession(cluster, jar)
    cluster.advance(120)
    expect((await jar.get('/api/one', { headers: CSRF })).status).toBe(200)
    const after = await storedSession(cluster, jar)
    expect(after.refreshToken).not.toBe(before.refreshToken)

    // Someone replays the spent refresh token: the IdP detects reuse and revokes the grant.
    const reuse = await fetch(`${cluster.idp.issuer}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${btoa('bff:bff-demo-secret')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: before.refreshToken!,
      }),
    })
    expect(reuse.status).toBe(400)

    cluster.advance(120)
    const response = await jar.get('/api/two', { headers: CSRF })
    expect(response.status).toBe(401)
    expect(await response.json()).toMatchObject({ error: 'session_expired' })
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
    expect(await cluster.redis.exists(`${cluster.redisPrefix}session:${before.id}`)).toBe(0)
  })
})

describe('cookie mode across instances, with a shared revocation list in Redis', () => {
  async function statusOnEach(c: Cluster, cookie: string): Promise<number[]> {
    return Promise.all(
      c.instances.map(async (instance) => {
        const response = await fetch(`${instance.url}/bff/user`, { headers: { ...CSRF, cookie } })
        return response.status
      })
    )
  }

  it('a back-channel logout received by one instance ends the session on all', async () => {
    cluster = await startCluster({
      env: { BFF_SESSION_STORE: 'cookie', BFF_REDIS_URL: 'redis://127.0.0.1:6379' },
    })
    const jar = cluster.jar()
    await cluster.login(jar)
    const cookie = cookieHeader(cluster, jar)
    expect(await statusOnEach(cluster, cookie)).toEqual([200, 200])
    cluster.idp.resetCounters()
    await confirmIdpLogout(jar, `${cluster.idp.issuer}/session/end`)
    expect(cluster.idp.backchannel).toEqual({ success: 1, error: 0 })
    expect(await statusOnEach(cluster, cookie)).toEqual([401, 401])
  })

  it('a copied cookie is refused by every instance once its session logged out', async () => {
    cluster = await startCluster({
      env: { BFF_SESSION_STORE: 'cookie', BFF_REDIS_URL: 'redis://127.0.0.1:6379' },
    })
    const jar = cluster.jar()
    await cluster.login(jar)
    const copied = cookieHeader(cluster, jar)
    const logout = await fetch(`${cluster.instances[0]!.url}/bff/logout`, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...CSRF, cookie: copied },
    })
    expect(logout.status).toBe(302)
    expect(await statusOnEach(cluster, copied)).toEqual([401, 401])
  })
})
