/**
 * The whole product, end to end over HTTP, once per session store: login through the real IdP's
 * pages, /bff/user, a proxied call, expiry and silent refresh, single-flight, logout, revocation.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redirectLocation } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { ALL_STORES, CSRF, describeStores, startStack, type Stack } from './harness.ts'

const JWT_LIKE = /eyJ[\w-]+\.[\w-]+\.[\w-]+/

describeStores(ALL_STORES, 'with the %s store', (store) => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ store, env: { BFF_REFRESH_SKEW: '30' } })
  })
  afterAll(() => stack.close())

  it('logs in, proxies with the bearer token, refreshes silently and logs out', async () => {
    const jar = stack.jar()
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)

    // Login: 302 to the IdP with PKCE S256, state and nonce; a Lax transaction cookie.
    const start = await jar.get('/bff/login?returnTo=%2Fdashboard%3Ftab%3D1')
    expect(start.status).toBe(302)
    const authorize = redirectLocation(start)!
    expect(authorize.origin).toBe(stack.idp.issuer)
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256')
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[\w-]{43}$/)
    expect(authorize.searchParams.get('state')).toBeTruthy()
    expect(authorize.searchParams.get('nonce')).toBeTruthy()
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${stack.baseUrl}/bff/callback`)
    const txCookie = jar.lastSetCookies.find((line) => line.startsWith('bff-tx.'))!
    expect(txCookie).toMatch(/HttpOnly/)
    expect(txCookie).toMatch(/SameSite=Lax/)
    expect(txCookie).toMatch(/Max-Age=600/)

    // Callback: session cookie set, transaction cookie deleted, back to returnTo.
    jar.clear()
    const callback = await stack.login(jar, { returnTo: '/dashboard?tab=1' })
    expect(callback.status).toBe(302)
    expect(callback.headers.get('location')).toBe('/dashboard?tab=1')
    const sessionCookie = jar.lastSetCookies.find((line) => line.startsWith('bff='))!
    expect(sessionCookie).toMatch(/HttpOnly/)
    expect(sessionCookie).toMatch(/SameSite=Strict/)
    expect(sessionCookie).toMatch(/Path=\//)
    expect(jar.lastSetCookies.some((line) => /^bff-tx\.[^=]+=;.*Max-Age=0/.test(line))).toBe(true)
    expect(Object.keys(jar.cookies(stack.url)).filter((n) => n.startsWith('bff-tx'))).toEqual([])

    // /bff/user: who, never a token.
    const userResponse = await jar.get('/bff/user', { headers: CSRF })
    expect(userResponse.status).toBe(200)
    const userText = await userResponse.text()
    const user = JSON.parse(userText)
    expect(user.sub).toBe('alice')
    expect(user.claims.email).toBe('alice@example.com')
    expect(user.claims.nonce).toBeUndefined()
    expect(user.claims.sid).toBeUndefined()
    expect(user.logoutUrl).toMatch(/^\/bff\/logout\?sid=/)
    // The idle timeout (30 min by default) slides with use, inside the 12 h absolute lifetime.
    expect(user.expiresAt).toBeGreaterThan(Date.now() / 1000 + 29 * 60)
    expect(user.expiresAt).toBeLessThanOrEqual(Date.now() / 1000 + 30 * 60 + 1)
    const session = (await stack.sessionOf(jar))!
    expect(userText).not.toContain(session.accessToken)
    expect(userText).not.toContain(session.refreshToken!)
    expect(userText).not.toMatch(JWT_LIKE)

    // Proxy: the upstream sees the session's bearer token and no cookie or CSRF header.
    stack.upstream.requests.length = 0
    const api = await jar.get('/api/things/1?q=x', { headers: { ...CSRF, cookie: 'extra=1' } })
    expect(api.status).toBe(200)
    expect(api.headers.get('set-cookie')).toBeNull()
    const seen = stack.upstream.requests.at(-1)!
    expect(seen.url).toBe('/things/1?q=x')
    expect(seen.headers.authorization).toBe(`Bearer ${session.accessToken}`)
    expect(seen.headers.cookie).toBeUndefined()
    expect(seen.headers['x-csrf']).toBeUndefined()
    expect(await stack.introspect(session.accessToken)).toMatchObject({
      active: true,
      sub: 'alice',
    })

    // Expiry: the BFF's clock passes the token's lifetime; the next call refreshes first.
    stack.idp.resetCounters()
    stack.advance(120)
    const afterExpiry = await jar.get('/api/things/2', { headers: CSRF })
    expect(afterExpiry.status).toBe(200)
    expect(stack.idp.grants.refresh).toBe(1)
    const refreshed = (await stack.sessionOf(jar))!
    expect(refreshed.accessToken).not.toBe(session.accessToken)
    expect(refreshed.refreshToken).not.toBe(session.refreshToken) // rotated and stored
    expect(refreshed.generation).toBe(session.generation + 1)
    expect(stack.upstream.requests.at(-1)!.headers.authorization).toBe(
      `Bearer ${refreshed.accessToken}`
    )
    expect(await stack.introspect(session.refreshToken!)).toMatchObject({ active: false })

    // A fresh token is not refreshed again.
    await jar.get('/api/things/3', { headers: CSRF })
    expect(stack.idp.grants.refresh).toBe(1)

    // Logout via the sid link: end-session redirect, cookie cleared, refresh token revoked.
    const logout = await jar.get(user.logoutUrl)
    expect(logout.status).toBe(302)
    const endSession = redirectLocation(logout)!
    expect(endSession.origin + endSession.pathname).toBe(`${stack.idp.issuer}/session/end`)
    expect(endSession.searchParams.get('id_token_hint')).toBe(refreshed.idToken)
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${stack.baseUrl}/`)
    expect(jar.lastSetCookies.some((line) => /^bff=;.*Max-Age=0/.test(line))).toBe(true)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
    expect(await stack.introspect(refreshed.refreshToken!)).toMatchObject({ active: false })
  })

  it('shares one refresh grant among 50 parallel calls with an expired token', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'bob' })
    stack.idp.resetCounters()
    stack.advance(120)
    const responses = await Promise.all(
      Array.from({ length: 50 }, (_, i) => jar.get(`/api/burst/${i}`, { headers: CSRF }))
    )
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200))
    expect(stack.idp.grants.refresh).toBe(1)
    const tokens = new Set(stack.upstream.requests.slice(-50).map((r) => r.headers.authorization))
    expect(tokens.size).toBe(1)
    // The browser keeps exactly the state the BFF stored: the next call needs no refresh.
    await jar.get('/api/after', { headers: CSRF })
    expect(stack.idp.grants.refresh).toBe(1)
  })

  it('ends the session with 401 session_expired when the IdP refuses the refresh token', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'carol' })
    const session = (await stack.sessionOf(jar))!
    // Revoked behind the BFF's back, e.g. by an administrator at the IdP.
    await revokeAtIdp(stack, session.refreshToken!)
    stack.advance(120)
    const response = await jar.get('/api/x', { headers: CSRF })
    expect(response.status).toBe(401)
    expect(await response.json()).toMatchObject({ error: 'session_expired' })
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
  })

  it('logs in silently with prompt=none while the IdP session lives, and reports login_required otherwise', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'dave' })
    const silent = await jar.get('/bff/login?prompt=none&returnTo=%2Fback')
    const atIdp = await jar.get(redirectLocation(silent)!)
    const callback = new URL(redirectLocation(atIdp)!)
    const done = await jar.get(`${stack.url}${callback.pathname}${callback.search}`)
    expect(done.headers.get('location')).toBe('/back')
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)

    const stranger = stack.jar()
    const attempt = await stranger.get('/bff/login?prompt=none&returnTo=%2Fback%3Fx%3D1')
    const refused = new URL(redirectLocation(await stranger.get(redirectLocation(attempt)!))!)
    expect(refused.searchParams.get('error')).toBe('login_required')
    const back = await stranger.get(`${stack.url}${refused.pathname}${refused.search}`)
    expect(back.status).toBe(302)
    expect(back.headers.get('location')).toBe('/back?x=1&error=login_required')
    expect(back.headers.get('cache-control')).toBe('no-store')
    expect((await stranger.get('/bff/user', { headers: CSRF })).status).toBe(401)
  })
})

describe('logins started in several tabs', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.close())

  it('each completes, but past four pending ones the oldest makes room', async () => {
    const jar = stack.jar()
    const authorizeUrls: URL[] = []
    for (let tab = 0; tab < 5; tab++) {
      authorizeUrls.push(redirectLocation(await jar.get(`/bff/login?returnTo=%2Ftab${tab}`))!)
    }
    const outcomes: Array<string | number> = []
    for (const url of authorizeUrls) {
      const atIdp = await loginAtIdp(jar, url, { login: 'alice', password: 'pass' })
      const callback = new URL(redirectLocation(atIdp)!)
      const done = await jar.get(`${stack.url}${callback.pathname}${callback.search}`)
      outcomes.push(done.status === 302 ? done.headers.get('location')! : done.status)
    }
    expect(outcomes).toEqual([400, '/tab1', '/tab2', '/tab3', '/tab4'])
  })
})

describe('upstream redirects', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.close())

  it('come back through the route prefix, never with the upstream address', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const redirect = async (location: string) => {
      const query = new URLSearchParams({ location })
      const response = await jar.get(`/api/go?${query}`, { headers: CSRF })
      expect(response.status).toBe(302)
      return response.headers.get('location')
    }
    // Absolute, to the upstream's own (internal) address: the browser goes through the BFF.
    expect(await redirect(`${stack.upstream.url}/orders/7?tab=items`)).toBe(
      '/api/orders/7?tab=items'
    )
    // Path-absolute and relative ones are the upstream's paths too.
    expect(await redirect('/orders')).toBe('/api/orders')
    expect(await redirect('next')).toBe('/api/next')
    // Anywhere else is left as it is.
    expect(await redirect('https://cdn.example.com/file.pdf')).toBe(
      'https://cdn.example.com/file.pdf'
    )
  })
})

describe('real access-token expiry (no clock tricks)', () => {
  let stack: Stack
  beforeAll(async () => {
    // Expiry is kept in whole seconds, so a 3 s token may live just over 2 s: room for a busy CI
    // machine (and the slower workerd target) between the login and the first call.
    stack = await startStack({ accessTokenTtl: 3, env: { BFF_REFRESH_SKEW: '0' } })
  })
  afterAll(() => stack.close())

  it('refreshes once the IdP-issued lifetime has passed', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    stack.idp.resetCounters()
    expect((await jar.get('/api/a', { headers: CSRF })).status).toBe(200)
    expect(stack.idp.grants.refresh).toBe(0)
    await new Promise((resolve) => setTimeout(resolve, 3200))
    expect((await jar.get('/api/b', { headers: CSRF })).status).toBe(200)
    expect(stack.idp.grants.refresh).toBe(1)
    const token = stack.upstream.requests.at(-1)!.headers.authorization!.slice('Bearer '.length)
    expect(await stack.introspect(token)).toMatchObject({ active: true })
  })
})

async function revokeAtIdp(stack: Stack, token: string) {
  const response = await fetch(`${stack.idp.issuer}/token/revocation`, {
    method: 'POST',
    headers: {
      authorization: `Basic ${btoa('bff:bff-demo-secret')}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ token, token_type_hint: 'refresh_token' }),
  })
  expect(response.status).toBe(200)
}
