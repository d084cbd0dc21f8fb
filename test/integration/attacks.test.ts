/**
 * Every attack on login, callback, proxy, logout and the cookie, each shown failing against the
 * running stack: nothing here is a unit test of a helper, it is what an attacker would send.
 */
import { createServer, type Server } from 'node:http'
import {
  createServer as createTcpServer,
  type AddressInfo,
  type Server as TcpServer,
} from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSealer } from '../../src/core/session/seal.ts'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { CSRF, startStack, type Stack } from './harness.ts'

let stack: Stack
let hanging: Server
let refusing: TcpServer

beforeAll(async () => {
  // An upstream that accepts the connection and never answers, and one that drops every
  // connection at once (a port merely closed could be taken by another test meanwhile).
  hanging = createServer(() => {})
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve))
  refusing = createTcpServer((socket) => socket.destroy())
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve))
  const down = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/`
  const slow = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/`
  stack = await startStack({
    env: { BFF_UPSTREAM_TIMEOUT: '0.3' },
  })
  // A second stack setting cannot be added after start, so the extra routes live in their own stack.
  extra = await startStack({
    env: {
      BFF_UPSTREAM_TIMEOUT: '0.3',
      BFF_API: `/slow/=${slow},/down/=${down}`,
    },
  })
})
let extra: Stack
afterAll(async () => {
  await stack.close()
  await extra.close()
  hanging.closeAllConnections()
  hanging.close()
  refusing.close()
})

async function loggedIn(s: Stack = stack, user = 'mallory-target'): Promise<CookieJar> {
  const jar = s.jar()
  const done = await s.login(jar, { user })
  expect(done.status).toBe(302)
  return jar
}

/** Counts every call the BFF makes to the IdP's token endpoint, answered or refused. */
function countTokenEndpointCalls(s: Stack) {
  const calls = { count: 0, stop: () => {} }
  const count = () => void calls.count++
  s.idp.provider.on('grant.success', count)
  s.idp.provider.on('grant.error', count)
  calls.stop = () => {
    const provider = s.idp.provider as unknown as { off(e: string, l: () => void): void }
    provider.off('grant.success', count)
    provider.off('grant.error', count)
  }
  return calls
}

function sessionCookieSet(jar: CookieJar): boolean {
  return jar.lastSetCookies.some((line) => /^(__Host-)?bff=[^;]+/.test(line))
}

describe('login: returnTo must stay on this site', () => {
  const attacks = [
    '//evil.example/x',
    '/\\evil.example',
    '\\\\evil.example',
    'https://evil.example/',
    'http:evil.example',
    'javascript:alert(1)',
    '/%2f%2fevil.example',
    '/%5cevil.example',
    '/.//evil.example',
    '/ok\r\nSet-Cookie: x=1',
    '/ok\u0000',
    '/ok\t',
    'evil.example',
  ]
  it.each(attacks)('refuses %j with 400 and no redirect', async (returnTo) => {
    const jar = stack.jar()
    const response = await jar.get(`/bff/login?returnTo=${encodeURIComponent(returnTo)}`)
    expect(response.status).toBe(400)
    expect(response.headers.get('location')).toBeNull()
    expect(await response.json()).toMatchObject({ error: 'invalid_return_to' })
  })

  it('shows a browser a readable page, not JSON', async () => {
    const response = await fetch(`${stack.url}/bff/login?returnTo=//evil.example`, {
      headers: { accept: 'text/html' },
    })
    expect(response.status).toBe(400)
    expect(response.headers.get('content-type')).toMatch(/text\/html/)
    expect(response.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/)
    expect(await response.text()).toMatch(/<h1>/)
  })

  it('refuses an unknown prompt value', async () => {
    const response = await stack.jar().get('/bff/login?prompt=evil')
    expect(response.status).toBe(400)
  })
})

describe('login transactions pile up in the browser', () => {
  it('keeps all transaction cookies together within 4 KB, oldest out first, so requests never get 431', async () => {
    const jar = await loggedIn(stack, 'many-tabs')
    // 1 KB of the site's other cookies, as a real origin has.
    jar.setCookie(stack.url, `other=${'o'.repeat(1024)}; Path=/`)
    const returnTo = `/${'r'.repeat(2000)}`
    const states: string[] = []
    for (let i = 0; i < 4; i++) {
      const start = await jar.get(`/bff/login?returnTo=${encodeURIComponent(returnTo)}`)
      expect(start.status).toBe(302)
      states.push(redirectLocation(start)!.searchParams.get('state')!)
    }
    const tx = Object.entries(jar.cookies(stack.url)).filter(([name]) => name.startsWith('bff-tx.'))
    expect(tx.length).toBeGreaterThan(0)
    const txBytes = tx.reduce((sum, [name, value]) => sum + name.length + 1 + value.length, 0)
    expect(txBytes).toBeLessThanOrEqual(4096)
    // The newest login is the one kept; the oldest ones were dropped to make room.
    expect(tx.map(([name]) => name)).toContain(`bff-tx.${states[3]!.slice(0, 16)}`)
    expect(tx.map(([name]) => name)).not.toContain(`bff-tx.${states[0]!.slice(0, 16)}`)
    // Every request to the origin still goes through, with every cookie the browser holds.
    const user = await jar.get('/bff/user', { headers: CSRF })
    expect(user.status).toBe(200)
  })
})

describe('callback: forged, replayed or swapped responses create no session', () => {
  it('refuses a callback without state', async () => {
    const jar = stack.jar()
    const response = await jar.get('/bff/callback?code=abc')
    expect(response.status).toBe(400)
    expect(sessionCookieSet(jar)).toBe(false)
  })

  it('refuses a callback the browser never started (login CSRF)', async () => {
    // The attacker logs in with their own account and sends the victim their callback link.
    const attacker = stack.jar()
    const start = await attacker.get('/bff/login')
    const atIdp = await loginAtIdp(attacker, redirectLocation(start)!, {
      login: 'attacker',
      password: 'pass',
    })
    const callback = redirectLocation(atIdp)!
    const victim = stack.jar()
    const response = await victim.get(`${stack.url}${callback.pathname}${callback.search}`)
    expect(response.status).toBe(400)
    expect(sessionCookieSet(victim)).toBe(false)
    expect((await victim.get('/bff/user', { headers: CSRF })).status).toBe(401)
  })

  it('refuses a replayed callback even with the original transaction cookie', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login')
    const txLine = jar.lastSetCookies.find((line) => line.startsWith('bff-tx.'))!
    const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
      login: 'replay',
      password: 'pass',
    })
    const callback = redirectLocation(atIdp)!
    const path = `${stack.url}${callback.pathname}${callback.search}`
    expect((await jar.get(path)).status).toBe(302)

    // Same URL again from the same browser: the transaction cookie is gone.
    const again = await jar.get(path)
    expect(again.status).toBe(400)

    // An attacker who copied the cookie too, replaying it again and again: the BFF knows the
    // transaction was used and never calls the IdP's token endpoint with its credentials again.
    const calls = countTokenEndpointCalls(stack)
    try {
      for (let i = 0; i < 5; i++) {
        const thief = stack.jar()
        thief.setCookie(stack.url, txLine)
        const replay = await thief.get(path, { headers: { accept: 'text/html' } })
        expect(replay.status).toBe(400)
        expect(await replay.text()).toMatch(/invalid or was already used/)
        expect(sessionCookieSet(thief)).toBe(false)
      }
      expect(calls.count).toBe(0)
    } finally {
      calls.stop()
    }
  })

  it('never lets a hostile error or error_description from the callback URL reach the log', async () => {
    // 10 KB each, URL-safe so the whole request stays under Node's 16 KB header limit.
    const cases = [
      { error: `evil_${'x'.repeat(10_000)}`, error_description: 'short', reason: 'other' },
      {
        error: 'access_denied',
        error_description: `desc_${'z'.repeat(10_000)}`,
        reason: 'access_denied',
      },
    ]
    for (const { reason, ...hostile } of cases) {
      const before = stack.logs().filter((l) => l.includes('login.refused')).length
      const jar = stack.jar()
      const start = await jar.get('/bff/login')
      const state = redirectLocation(start)!.searchParams.get('state')!
      const params = new URLSearchParams({ ...hostile, state, iss: stack.idp.issuer })
      const response = await jar.get(`/bff/callback?${params}`, {
        headers: { accept: 'text/html' },
      })
      expect(response.status).toBe(400)
      // workerd's lines arrive shortly after the answer: wait for the refusal to be logged.
      const refused = () => stack.logs().filter((l) => l.includes('login.refused'))
      for (let i = 0; i < 200 && refused().length === before; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      expect(refused().at(-1)).toMatch(new RegExp(`"reason":"${reason}"`))
      const all = stack.logs().join('\n')
      expect(all).not.toContain('evil_xxxx')
      expect(all).not.toContain('desc_zzzz')
      expect(Math.max(...stack.logs().map((l) => l.length))).toBeLessThan(1000)
    }
  })

  it('refuses an authorization code injected into another login (PKCE)', async () => {
    const attacker = stack.jar()
    const start = await attacker.get('/bff/login')
    const atIdp = await loginAtIdp(attacker, redirectLocation(start)!, {
      login: 'inject',
      password: 'pass',
    })
    const stolenCode = redirectLocation(atIdp)!.searchParams.get('code')!

    const victim = stack.jar()
    const victimStart = await victim.get('/bff/login')
    const victimState = redirectLocation(victimStart)!.searchParams.get('state')!
    const forged = new URLSearchParams({
      code: stolenCode,
      state: victimState,
      iss: stack.idp.issuer,
    })
    const response = await victim.get(`/bff/callback?${forged}`)
    expect(response.status).toBe(400)
    expect(sessionCookieSet(victim)).toBe(false)
  })

  it('refuses a response whose iss names another issuer (mix-up)', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login')
    const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
      login: 'mixup',
      password: 'pass',
    })
    const callback = redirectLocation(atIdp)!
    callback.searchParams.set('iss', 'https://evil.example')
    const response = await jar.get(`${stack.url}${callback.pathname}${callback.search}`)
    expect(response.status).toBe(400)
    expect(sessionCookieSet(jar)).toBe(false)
  })

  it('refuses a tampered state', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login')
    const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
      login: 'state',
      password: 'pass',
    })
    const callback = redirectLocation(atIdp)!
    const state = callback.searchParams.get('state')!
    // Same cookie-name prefix, different state: the sealed transaction's state no longer matches.
    callback.searchParams.set('state', `${state.slice(0, 16)}tampered`)
    const response = await jar.get(`${stack.url}${callback.pathname}${callback.search}`)
    expect(response.status).toBe(400)
    expect(sessionCookieSet(jar)).toBe(false)
  })

  it('shows a readable page when the IdP reports an error', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login')
    const state = redirectLocation(start)!.searchParams.get('state')!
    const params = new URLSearchParams({ error: 'access_denied', state, iss: stack.idp.issuer })
    const response = await jar.get(`/bff/callback?${params}`, { headers: { accept: 'text/html' } })
    expect(response.status).toBe(400)
    expect(await response.text()).toMatch(/did not complete the login/)
    expect(sessionCookieSet(jar)).toBe(false)
  })
})

describe('API proxy', () => {
  it('refuses calls without X-CSRF: 1, and cross-site ones, before reaching the upstream', async () => {
    const jar = await loggedIn()
    const before = stack.upstream.requests.length
    const noHeader = await jar.get('/api/x')
    expect(noHeader.status).toBe(403)
    expect(await noHeader.json()).toMatchObject({ error: 'csrf' })
    const crossSite = await jar.post('/api/x', {
      headers: { ...CSRF, 'sec-fetch-site': 'cross-site' },
      form: { amount: '1000' },
    })
    expect(crossSite.status).toBe(403)
    expect(stack.upstream.requests.length).toBe(before)
  })

  it('answers 401 unauthenticated without a session', async () => {
    const response = await stack.jar().get('/api/x', { headers: CSRF })
    expect(response.status).toBe(401)
    expect(await response.json()).toMatchObject({ error: 'unauthenticated' })
  })

  it.each([
    '/api/..%2fsecret',
    '/api/%2e%2e%2fsecret',
    '/api/a/..%2f..%2fsecret',
    '/api/..%5csecret',
    '/api/..;/secret',
    '/api/%00',
  ])('keeps %s inside its prefix', async (path) => {
    const jar = await loggedIn()
    const before = stack.upstream.requests.length
    const response = await jar.get(`${stack.url}${path}`, { headers: CSRF })
    expect(response.status).toBe(400)
    expect(stack.upstream.requests.length).toBe(before)
  })

  it('never sends a dot-dot path to the upstream, however it is written', async () => {
    const jar = await loggedIn()
    for (const path of ['/api/../secret', '/api/%2e%2e/secret', '/api/.%2e/secret']) {
      const response = await jar.get(`${stack.url}${path}`, { headers: CSRF })
      // The URL parser resolves these before routing: they leave /api/ and match no route.
      expect(response.status).toBe(404)
    }
    expect(stack.upstream.requests.some((r) => r.url.includes('secret'))).toBe(false)
  })

  it('strips the upstream Set-Cookie and keeps the path and query', async () => {
    const jar = await loggedIn()
    const response = await jar.post('/api/orders?page=2', { headers: CSRF, json: { item: 1 } })
    expect(response.status).toBe(200)
    expect(response.headers.get('set-cookie')).toBeNull()
    expect(stack.upstream.requests.at(-1)).toMatchObject({ method: 'POST', url: '/orders?page=2' })
  })

  it('answers 504 upstream_timeout and 502 upstream_unavailable as JSON', async () => {
    const jar = await loggedIn(extra)
    const slow = await jar.get('/slow/x', { headers: CSRF })
    expect(slow.status).toBe(504)
    expect(await slow.json()).toMatchObject({ error: 'upstream_timeout' })
    const down = await jar.get('/down/x', { headers: CSRF })
    expect(down.status).toBe(502)
    expect(await down.json()).toMatchObject({ error: 'upstream_unavailable' })
    // The session survives upstream failures.
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
  })
})

describe('logout', () => {
  it('refuses a wrong or missing sid with 400 and logs nobody out', async () => {
    const jar = await loggedIn()
    for (const query of ['?sid=wrong', '', '?sid=']) {
      const response = await jar.get(`/bff/logout${query}`)
      expect(response.status).toBe(400)
      expect(response.headers.get('location')).toBeNull()
    }
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
  })

  it('refuses a POST logout without X-CSRF (cross-site form) and accepts one with it', async () => {
    const jar = await loggedIn()
    const forged = await jar.post('/bff/logout', { form: {} })
    expect(forged.status).toBe(403)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
    const real = await jar.post('/bff/logout', { headers: CSRF })
    expect(real.status).toBe(302)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
  })

  it('refuses a copied cookie once its session has logged out', async () => {
    const jar = await loggedIn()
    const copy = stack.jar()
    for (const line of jar.stored(stack.url).map((c) => `${c.name}=${c.value}; Path=/`)) {
      copy.setCookie(stack.url, line)
    }
    const { logoutUrl } = await (await jar.get('/bff/user', { headers: CSRF })).json()
    await jar.get(logoutUrl)
    expect((await copy.get('/bff/user', { headers: CSRF })).status).toBe(401)
  })
})

describe('session cookie', () => {
  it('treats a tampered cookie or one sealed with another secret as no session', async () => {
    const jar = await loggedIn()
    const cookie = jar.cookies(stack.url).bff!
    const tampered = stack.jar()
    const mid = Math.floor(cookie.length / 2)
    const flipped = cookie.slice(0, mid) + (cookie[mid] === 'A' ? 'B' : 'A') + cookie.slice(mid + 1)
    tampered.setCookie(stack.url, `bff=${flipped}; Path=/`)
    expect((await tampered.get('/bff/user', { headers: CSRF })).status).toBe(401)

    const session = (await stack.sessionOf(jar))!
    const foreign = await createSealer(['x'.repeat(40)]).seal({ session }, 3600)
    const forged = stack.jar()
    forged.setCookie(stack.url, `bff=${foreign}; Path=/`)
    const response = await forged.get('/api/x', { headers: CSRF })
    expect(response.status).toBe(401)
  })

  it('uses the __Host- prefix and Secure on an https origin', async () => {
    const https = await startStack({ baseUrl: 'https://app.example.test' })
    try {
      const jar = https.jar()
      const start = await jar.get('/bff/login')
      const tx = jar.lastSetCookies.find((line) => line.startsWith('__Host-bff-tx.'))!
      expect(tx).toMatch(/; Secure/)
      expect(tx).toMatch(/Path=\//)
      const done = await https.login(jar)
      expect(done.status).toBe(302)
      expect(start.status).toBe(302)
      const session = jar.lastSetCookies.find((line) => line.startsWith('__Host-bff='))!
      expect(session).toMatch(/; Secure/)
      expect(session).toMatch(/HttpOnly/)
      expect(session).toMatch(/SameSite=Strict/)
      expect(session).not.toMatch(/Domain=/i)
    } finally {
      await https.close()
    }
  })
  it('on https, takes only its __Host- cookies: a plain-named copy or a tampered chunk is no session', async () => {
    // Small lines, so the session is chunked.
    const https = await startStack({
      baseUrl: 'https://app.example.test',
      env: { BFF_COOKIE_MAX_BYTES: '1024' },
    })
    try {
      const jar = https.jar()
      expect((await https.login(jar)).status).toBe(302)
      const hostOnly = (lines: string[]) => {
        for (const line of lines) {
          expect(line).toMatch(/^__Host-bff/)
          const attributes = line.split('; ').slice(1)
          expect(attributes).toEqual(expect.arrayContaining(['Secure', 'Path=/', 'HttpOnly']))
          expect(line).not.toMatch(/Domain=/i)
        }
      }
      hostOnly(jar.lastSetCookies)
      const session = Object.entries(jar.cookies(https.url)).filter(([name]) =>
        /^__Host-bff(\.\d+)?$/.test(name)
      )
      expect(session.length).toBeGreaterThan(1)

      // A sibling subdomain can plant cookies only with Domain=, and browsers refuse a __Host-
      // name with it: plain names are all it can plant. Even the real seal under them is nothing.
      const shadow = https.jar()
      for (const [name, value] of session) {
        shadow.setCookie(https.url, `${name.slice('__Host-'.length)}=${value}; Path=/`)
      }
      expect((await shadow.get('/bff/user', { headers: CSRF })).status).toBe(401)

      const tampered = https.jar()
      for (const [i, [name, value]] of session.entries()) {
        const last = i === session.length - 1
        const changed = last
          ? value.slice(0, 5) + (value[5] === 'A' ? 'B' : 'A') + value.slice(6)
          : value
        tampered.setCookie(https.url, `${name}=${changed}; Path=/; Secure`)
      }
      expect((await tampered.get('/bff/user', { headers: CSRF })).status).toBe(401)
      // ...and every chunk of it is cleared, with the same attributes.
      expect(tampered.lastSetCookies).toHaveLength(session.length)
      hostOnly(tampered.lastSetCookies)

      // The real session was alive all along; logging out clears it and marks the browser.
      expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
      expect((await jar.post('/bff/logout', { headers: CSRF })).status).toBe(302)
      expect(jar.lastSetCookies.map((line) => line.split('=')[0])).toContain('__Host-bff-out')
      hostOnly(jar.lastSetCookies)
    } finally {
      await https.close()
    }
  })
})

describe('bad input never becomes a 500', () => {
  // Logout without a session just goes home (302); everything else is a clear 4xx.
  it.each([
    ['GET', '/bff/callback?state=%ff%fe&code=%00'],
    ['GET', '/bff/logout?sid=%E0%A4%A'],
    ['GET', '/bff/nope'],
    ['PUT', '/bff/user'],
  ])('%s %s', async (method, path) => {
    const response = await fetch(`${stack.url}${path}`, {
      method,
      redirect: 'manual',
      headers: { cookie: 'bff=Fe26.2**garbage; bff-tx.x=%%%' },
    })
    expect(response.status).toBeLessThan(500)
    if (response.status >= 400) {
      const body = await response.json()
      expect(typeof body.error).toBe('string')
      expect(typeof body.message).toBe('string')
    }
  })

  it('takes a planted cookie whose name it could not have written for none of its own', async () => {
    const jar = stack.jar()
    // Past the transaction limits, so login would delete them if they counted as its own.
    for (let i = 0; i < 6; i++) jar.setCookie(stack.url, `bff-tx.(${i})=${'x'.repeat(900)}; Path=/`)
    const start = await jar.get('/bff/login')
    expect(start.status).toBe(302)
    expect(jar.lastSetCookies.filter((line) => line.startsWith('bff-tx.('))).toEqual([])
    const callback = await jar.get('/bff/callback?state=(1)&code=x', { headers: CSRF })
    expect(callback.status).toBe(400)
    expect(await callback.json()).toMatchObject({ error: 'invalid_callback' })
  })

  it('reports store health', async () => {
    const response = await fetch(`${stack.url}/bff/health`)
    expect(response.status).toBe(200)
    expect(await response.json()).toMatchObject({ status: 'ok', store: 'cookie' })
  })
})
