/**
 * Refresh that never logs a user out by accident, against the real IdP with refresh-token rotation
 * and reuse detection: parallel tabs at the moment of expiry (in every store and across two
 * instances), a slow response that must not write stale tokens back, an IdP that fails and recovers,
 * and sessions too large for a cookie.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { Session } from '../../src/core/session/types.ts'
import type { CookieJar } from '../helpers/http.ts'
import { startCluster, type Cluster, type ClusterOptions } from './cluster.ts'
import { openSessionCookie } from '../helpers/session-cookie.ts'

const CSRF = { 'x-csrf': '1' }
// Each test starts a cluster and drives ~100 requests: generous on 2 cores shared with other suites.
vi.setConfig({ testTimeout: 30_000 })
let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

async function start(options: ClusterOptions): Promise<Cluster> {
  cluster = await startCluster(options)
  return cluster
}

/** The session the jar's cookie carries: unsealed, and read from Redis when it holds only an id. */
async function sessionIn(c: Cluster, jar: CookieJar): Promise<Session> {
  const cookies = jar.cookies(c.url)
  let sealed = cookies.bff!
  for (let i = 1; cookies[`bff.${i}`]; i++) sealed += cookies[`bff.${i}`]
  const ref = (await openSessionCookie(sealed, c.secret))!
  if ('session' in ref) return ref.session
  return JSON.parse((await c.redis.get(`${c.redisPrefix}session:${ref.id}`))!) as Session
}

/** 3 tabs x 30 calls, all sent with the cookie the browser holds at the moment of expiry. */
async function tabsAtExpiry(c: Cluster, jar: CookieJar) {
  const tabs = [0, 1, 2].map((tab) =>
    Array.from({ length: 30 }, async (_, i) => {
      const response = await jar.get(`/api/tab${tab}/${i}`, { headers: CSRF })
      await response.arrayBuffer() // an unread body keeps its connection busy
      return response
    })
  )
  return (await Promise.all(tabs.map((calls) => Promise.all(calls)))).flat()
}

describe.each([
  ['cookie', 1],
  ['memory', 1],
  ['redis', 1],
  ['cookie', 2],
  ['redis', 2],
] as const)(
  '3 tabs x 30 parallel calls at expiry, %s store, %i instance(s)',
  (store, instances) => {
    it('all answer 200, one refresh grant, and the session lives on', async () => {
      const env =
        store === 'cookie' && instances > 1
          ? { BFF_SESSION_STORE: store, BFF_REDIS_URL: 'redis://127.0.0.1:6379' }
          : { BFF_SESSION_STORE: store }
      const c = await start({ instances, env })
      const jar = c.jar()
      await c.login(jar)
      c.idp.resetCounters()
      c.advance(120)
      const responses = await tabsAtExpiry(c, jar)
      expect(responses.map((r) => r.status)).toEqual(Array(90).fill(200))
      expect(c.idp.grants.refresh).toBe(1)
      // Past the grace window the browser's cookie still leads to a live session whose refresh
      // token is the current one: the next refreshes (60 s tokens, 30 s skew) succeed.
      c.advance(31)
      expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
      expect((await jar.get('/api/later', { headers: CSRF })).status).toBe(200)
      expect(c.idp.grants.refresh).toBe(2)
      c.advance(120)
      expect((await jar.get('/api/much-later', { headers: CSRF })).status).toBe(200)
      expect(c.idp.grants.refresh).toBe(3)
    })
  }
)

describe('a slow response cannot write stale tokens back', () => {
  it.each(['cookie', 'redis'])('with the %s store', async (store) => {
    const c = await start({
      instances: 1,
      idp: { accessTokenTtl: 3600 },
      env: { BFF_SESSION_STORE: store, BFF_IDLE_TIMEOUT: '86400' },
    })
    const jar = c.jar()
    await c.login(jar)
    // A minute later the slow request slides the session (a write of generation 1) ...
    c.advance(61)
    const slow = jar.get('/api/report?delay=1500', { headers: CSRF })
    await new Promise((resolve) => setTimeout(resolve, 300))
    // ... while a fast request, once the token has expired, refreshes to generation 2.
    c.advance(3600)
    expect((await jar.get('/api/fast', { headers: CSRF })).status).toBe(200)
    expect((await sessionIn(c, jar)).generation).toBe(2)
    expect((await slow).status).toBe(200)
    // The slow answer did not put generation 1 (with its spent refresh token) back.
    const after = await sessionIn(c, jar)
    expect(after.generation).toBe(2)
    c.advance(31 + 3600)
    expect((await jar.get('/api/next', { headers: CSRF })).status).toBe(200)
    expect(c.idp.grants.refresh).toBe(2)
  })
})

describe('an IdP that fails and recovers logs nobody out', () => {
  it('answers 503 idp_unavailable while down, keeps the session, and refreshes once back', async () => {
    let down = false
    const idpFetch: typeof fetch = (input, init) => {
      const url = input instanceof Request ? input.url : String(input)
      if (down && url.endsWith('/token')) {
        return Promise.resolve(new Response('{"error":"temporarily_unavailable"}', { status: 503 }))
      }
      return fetch(input, init)
    }
    const c = await start({ instances: 1, idpFetch, env: { BFF_SESSION_STORE: 'redis' } })
    const jar = c.jar()
    await c.login(jar)
    c.idp.resetCounters()

    // Inside the refresh skew the token is still valid: it keeps being used while the IdP is down.
    c.advance(45)
    down = true
    expect((await jar.get('/api/soon', { headers: CSRF })).status).toBe(200)

    // Expired and the IdP still down: 503, the session kept.
    c.advance(30)
    const failed = await jar.get('/api/expired', { headers: CSRF })
    expect(failed.status).toBe(503)
    expect(await failed.json()).toMatchObject({ error: 'idp_unavailable' })
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)

    // Back: the next call (after the short pause on failures) refreshes and succeeds.
    down = false
    c.advance(6)
    expect((await jar.get('/api/recovered', { headers: CSRF })).status).toBe(200)
    expect(c.idp.grants.refresh).toBe(1)
  })
})

describe.each(['cookie', 'memory', 'redis'] as const)(
  'a logout while a refresh is under way, %s store',
  (store) => {
    it('the refreshing call answers 401 and never reaches the upstream', async () => {
      let slowToken = false
      let refreshStarted: () => void = () => {}
      const refreshing = new Promise<void>((resolve) => (refreshStarted = resolve))
      const idpFetch: typeof fetch = async (input, init) => {
        const url = input instanceof Request ? input.url : String(input)
        const response = await fetch(input, init)
        if (!slowToken || !url.endsWith('/token')) return response
        // The IdP has answered; its answer is slow to arrive, and the user logs out meanwhile.
        refreshStarted()
        await new Promise((resolve) => setTimeout(resolve, 1000))
        return response
      }
      const env =
        store === 'cookie'
          ? { BFF_SESSION_STORE: store, BFF_REDIS_URL: 'redis://127.0.0.1:6379' }
          : { BFF_SESSION_STORE: store }
      const c = await start({ instances: 1, idpFetch, env })
      const jar = c.jar()
      await c.login(jar)
      c.advance(45)
      slowToken = true
      const inFlight = jar.get('/api/after-logout', { headers: CSRF })
      await refreshing
      slowToken = false
      expect((await jar.post('/bff/logout', { headers: CSRF })).status).toBe(302)
      const answer = await inFlight
      expect(answer.status).toBe(401)
      expect(c.upstream.requests.some((r) => r.url.includes('after-logout'))).toBe(false)
      expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
    })
  }
)

describe('cookie budget with a large ID token', () => {
  // ~6 KB of group names: the ID token alone passes what one cookie may hold.
  const groups = Array.from({ length: 200 }, (_, i) => `group-with-a-long-name-${i}`)

  /** The session cookie's lines that set a value (a write also deletes the chunk after its last). */
  function cookieLines(jar: CookieJar): string[] {
    return jar.lastSetCookies.filter(
      (line) => /^bff(\.\d+)?=/.test(line) && !line.includes('Max-Age=0')
    )
  }

  it('without a server store: compacts the session to fit, and everything still works', async () => {
    const c = await start({
      instances: 1,
      idp: { extraProfileClaims: { groups } },
      env: { BFF_SESSION_STORE: 'cookie' },
    })
    const jar = c.jar()
    await c.login(jar)
    const lines = cookieLines(jar)
    expect(lines.length).toBeGreaterThan(0)
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(3584)
    expect(lines.reduce((sum, line) => sum + line.length, 0)).toBeLessThanOrEqual(8192)
    const user = await (await jar.get('/bff/user', { headers: CSRF })).json()
    expect(user.sub).toBe('alice')
    expect(user.claims.email).toBe('alice@example.com')
    expect(user.claims.groups).toBeUndefined() // dropped to fit
    expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
    const logout = await jar.post('/bff/logout', { headers: CSRF })
    expect(logout.status).toBe(302)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
  })

  it('with Redis configured: keeps the large session server-side, the cookie small', async () => {
    const c = await start({
      instances: 2,
      idp: { extraProfileClaims: { groups } },
      env: { BFF_SESSION_STORE: 'cookie', BFF_REDIS_URL: 'redis://127.0.0.1:6379' },
    })
    const jar = c.jar()
    await c.login(jar)
    const lines = cookieLines(jar)
    expect(lines).toHaveLength(1)
    expect(lines[0]!.length).toBeLessThan(1024)
    const user = await (await jar.get('/bff/user', { headers: CSRF })).json()
    expect(user.claims.groups).toEqual(groups) // nothing dropped
    c.advance(120)
    expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
    expect((await jar.get('/api/y', { headers: CSRF })).status).toBe(200)
    expect(c.idp.grants.refresh).toBe(1)
  })

  it('with Redis configured: a session that outgrows the cookie at a refresh moves to Redis', async () => {
    // The account gains its groups after login: the refreshed ID token no longer fits the cookie.
    const claims: Record<string, unknown> = { groups: [] }
    const c = await start({
      instances: 2,
      // Long enough that the calls below, past the grace window, need no second refresh.
      idp: { extraProfileClaims: claims, accessTokenTtl: 600 },
      env: { BFF_SESSION_STORE: 'cookie', BFF_REDIS_URL: 'redis://127.0.0.1:6379' },
    })
    const jar = c.jar()
    await c.login(jar)
    expect((await sessionIn(c, jar)).claims.groups).toEqual([])
    claims.groups = groups
    c.advance(600)
    const refreshed = await jar.get('/api/x', { headers: CSRF })
    expect(refreshed.status).toBe(200)
    expect(c.idp.grants.refresh).toBe(1)
    // The browser now holds only the id; the tokens it held before are no longer in its cookie.
    const lines = cookieLines(jar)
    expect(lines).toHaveLength(1)
    expect(lines[0]!.length).toBeLessThan(1024)
    const moved = await sessionIn(c, jar)
    expect(moved.generation).toBe(2)
    expect(moved.claims.groups).toEqual(groups)
    // Past the grace window the old refresh token would be spent again (and the IdP, seeing it
    // reused, would end the session) had the new generation not been kept anywhere.
    c.advance(60)
    for (const path of ['/api/y', '/api/z']) {
      expect((await jar.get(path, { headers: CSRF })).status).toBe(200)
    }
    expect(c.idp.grants.refresh).toBe(1)
  })
})
