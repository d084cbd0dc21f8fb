/**
 * CSRF beyond the `X-CSRF: 1` header: what a hostile site can make a logged-in browser send. A
 * cross-site form post and a cross-origin fetch (with and without a preflight) both fail; Fetch
 * Metadata (`Sec-Fetch-Site: cross-site`) is refused on every unsafe method, whatever else the
 * request carries; and no answer ever grants CORS to a foreign origin. Requests carry the session
 * cookie even where SameSite=Strict would keep a browser from sending it: the worst case.
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { SignJWT, importJWK } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CookieJar } from '../helpers/http.ts'
import { CSRF, startStack, type Stack } from '../integration/harness.ts'

const EVIL = 'https://evil.example'
const ADMIN_TOKEN = randomBytes(32).toString('base64url')
/** What Chromium sends for a form on evil.example posting to the BFF. */
const CROSS_SITE_FORM = {
  origin: EVIL,
  'sec-fetch-site': 'cross-site',
  'sec-fetch-mode': 'navigate',
  'sec-fetch-dest': 'document',
  accept: 'text/html,application/xhtml+xml',
}
/** What Chromium sends for fetch(…, { credentials: 'include' }) from evil.example. */
const CROSS_ORIGIN_FETCH = {
  origin: EVIL,
  'sec-fetch-site': 'cross-site',
  'sec-fetch-mode': 'cors',
  'sec-fetch-dest': 'empty',
}

let stack: Stack
beforeAll(async () => {
  stack = await startStack({ store: 'memory', env: { BFF_ADMIN_TOKEN: ADMIN_TOKEN } })
})
afterAll(() => stack.close())

async function loggedIn(user: string): Promise<CookieJar> {
  const jar = stack.jar()
  expect((await stack.login(jar, { user })).status).toBe(302)
  return jar
}

async function alive(jar: CookieJar): Promise<boolean> {
  return (await jar.get('/bff/user', { headers: CSRF })).status === 200
}

function expectNoCors(response: Response) {
  for (const name of [
    'access-control-allow-origin',
    'access-control-allow-credentials',
    'access-control-allow-methods',
    'access-control-allow-headers',
  ]) {
    expect(response.headers.get(name), `${name} on ${response.url}`).toBeNull()
  }
}

describe('a cross-site form post', () => {
  it('to the API fails with 403 and never reaches the upstream', async () => {
    const jar = await loggedIn('csrf-form')
    const before = stack.upstream.requests.length
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const response = await jar.request(method, '/api/transfer', {
        headers: CROSS_SITE_FORM,
        form: { to: 'mallory', amount: '1000' },
      })
      expect(response.status, method).toBe(403)
      expect(response.headers.get('content-type')).toMatch(/^text\/html/) // a page, for a browser
      expectNoCors(response)
    }
    expect(stack.upstream.requests.length).toBe(before)
    expect(await alive(jar)).toBe(true)
  })

  it('to logout fails with 403 and the session lives on', async () => {
    const jar = await loggedIn('csrf-logout')
    const response = await jar.post('/bff/logout', { headers: CROSS_SITE_FORM, form: {} })
    expect(response.status).toBe(403)
    expect(await alive(jar)).toBe(true)
  })

  it('to the API with a text/plain body shaped like JSON fails too', async () => {
    const jar = await loggedIn('csrf-plain')
    const before = stack.upstream.requests.length
    const response = await jar.post('/api/transfer', {
      headers: { ...CROSS_SITE_FORM, 'content-type': 'text/plain' },
      body: '{"to":"mallory","amount":1000}',
    })
    expect(response.status).toBe(403)
    expect(stack.upstream.requests.length).toBe(before)
  })
})

describe('a cross-origin fetch', () => {
  it('fails its preflight: 403 and no CORS grant, so the browser never sends the request', async () => {
    for (const path of ['/api/transfer', '/bff/user', '/bff/logout']) {
      const preflight = await fetch(`${stack.url}${path}`, {
        method: 'OPTIONS',
        headers: {
          ...CROSS_ORIGIN_FETCH,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type, x-csrf',
        },
      })
      expect(preflight.status, path).toBeGreaterThanOrEqual(400)
      expectNoCors(preflight)
    }
  })

  it('without a preflight (a simple request) fails with 403 and reaches nothing', async () => {
    const jar = await loggedIn('csrf-fetch')
    const before = stack.upstream.requests.length
    for (const [method, path] of [
      ['GET', '/api/account'],
      ['POST', '/api/transfer'],
      ['GET', '/bff/user'],
      ['POST', '/bff/logout'],
    ]) {
      const response = await jar.request(method!, path!, {
        headers: { ...CROSS_ORIGIN_FETCH, 'content-type': 'text/plain' },
        ...(method === 'POST' ? { body: 'x' } : {}),
      })
      expect(response.status, `${method} ${path}`).toBe(403)
      expect(await response.json()).toMatchObject({ error: 'csrf' })
      expectNoCors(response)
    }
    expect(stack.upstream.requests.length).toBe(before)
    expect(await alive(jar)).toBe(true)
  })

  it('fails even if it could send X-CSRF (Fetch Metadata is a second, independent line)', async () => {
    const jar = await loggedIn('csrf-header')
    const before = stack.upstream.requests.length
    const response = await jar.post('/api/transfer', {
      headers: { ...CROSS_ORIGIN_FETCH, ...CSRF },
      json: { to: 'mallory' },
    })
    expect(response.status).toBe(403)
    expect(stack.upstream.requests.length).toBe(before)
  })

  it('from the same origin works (the control case)', async () => {
    const jar = await loggedIn('csrf-same')
    const response = await jar.post('/api/transfer', {
      headers: {
        ...CSRF,
        origin: stack.url,
        'sec-fetch-site': 'same-origin',
        'sec-fetch-mode': 'cors',
      },
      json: { to: 'friend' },
    })
    expect(response.status).toBe(200)
    expectNoCors(response)
  })
})

describe('Sec-Fetch-Site: cross-site on unsafe methods, everywhere', () => {
  const ROUTES = [
    '/bff/login',
    '/bff/callback',
    '/bff/user',
    '/bff/logout',
    '/bff/backchannel',
    '/bff/health',
    '/bff/admin/sessions',
    '/bff/nope',
    '/api/anything',
  ]

  /** A logout token the IdP could have signed for this session: valid in every respect. */
  async function logoutToken(sid: string): Promise<string> {
    const now = Math.floor(Date.now() / 1000)
    const key = await importJWK(stack.idp.signingKey, 'RS256')
    return new SignJWT({
      iss: stack.idp.issuer,
      aud: 'bff',
      iat: now,
      exp: now + 120,
      jti: randomUUID(),
      sid,
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    })
      .setProtectedHeader({ alg: 'RS256', kid: stack.idp.signingKey.kid, typ: 'logout+jwt' })
      .sign(key)
  }

  it.each(['POST', 'PUT', 'PATCH', 'DELETE'])(
    '%s with every credential a request could carry changes nothing',
    async (method) => {
      const jar = await loggedIn(`csrf-${method.toLowerCase()}`)
      const { sid, sub } = (await stack.sessionOf(jar))!
      const before = stack.upstream.requests.length
      for (const route of ROUTES) {
        const query = route === '/bff/admin/sessions' ? `?sub=${sub}` : `?sid=${sid}`
        const response = await jar.request(method, `${route}${query}`, {
          headers: {
            ...CROSS_SITE_FORM,
            ...CSRF,
            authorization: `Bearer ${ADMIN_TOKEN}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: new URLSearchParams({ logout_token: await logoutToken(sid) }).toString(),
        })
        // 403 where the route takes this method; 404 where it takes no such method at all.
        expect([403, 404], `${method} ${route} answered ${response.status}`).toContain(
          response.status
        )
        expectNoCors(response)
      }
      expect(stack.upstream.requests.length).toBe(before)
      expect(await alive(jar)).toBe(true)
    }
  )

  it('still lets the IdP (no Fetch Metadata) post a back-channel logout', async () => {
    const jar = await loggedIn('csrf-backchannel')
    const { sid } = (await stack.sessionOf(jar))!
    const response = await fetch(`${stack.url}/bff/backchannel`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: await logoutToken(sid) }).toString(),
    })
    expect(response.status).toBe(200)
    expect(await alive(jar)).toBe(false)
  })

  it('still lets the IdP send the browser back to the callback (a cross-site GET navigation)', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login')
    const { loginAtIdp } = await import('../helpers/idp-login.ts')
    const atIdp = await loginAtIdp(jar, start.headers.get('location')!, {
      login: 'csrf-nav',
      password: 'pass',
    })
    const back = new URL(atIdp.headers.get('location')!)
    const callback = await jar.get(`${stack.url}${back.pathname}${back.search}`, {
      headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate' },
    })
    expect(callback.status).toBe(302)
    expect(await alive(jar)).toBe(true)
  })
})

describe('CORS stays closed', () => {
  const PATHS = [
    '/bff/login',
    '/bff/callback',
    '/bff/user',
    '/bff/logout',
    '/bff/backchannel',
    '/bff/health',
    '/bff/admin/sessions',
    '/bff/nope',
    '/api/x',
    '/',
  ]
  const ORIGINS = [EVIL, 'null', 'http://127.0.0.1.evil.example', 'http://localhost:1']

  it('no answer to any route, method or foreign origin carries Access-Control-Allow-*', async () => {
    const jar = await loggedIn('cors')
    for (const path of PATHS) {
      for (const origin of ORIGINS) {
        for (const method of ['OPTIONS', 'GET', 'POST']) {
          const response = await jar.request(method, path, {
            headers: {
              origin,
              ...CSRF,
              'access-control-request-method': 'DELETE',
              'access-control-request-headers': 'x-csrf, authorization',
            },
          })
          await response.body?.cancel()
          expect(response.status, `${method} ${path} from ${origin}`).not.toBe(500)
          expectNoCors(response)
        }
      }
    }
  })
})
