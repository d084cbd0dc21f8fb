/**
 * Session timeouts (sliding idle, absolute lifetime) in every store, and the admin API.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import { confirmIdpLogout } from '../helpers/idp-login.ts'
import {
  ALL_STORES,
  CSRF,
  SERVER_STORE,
  describeStores,
  startStack,
  type Stack,
} from './harness.ts'

async function status(jar: CookieJar, path = '/bff/user'): Promise<number> {
  return (await jar.get(path, { headers: CSRF })).status
}

describeStores(ALL_STORES, 'timeouts with the %s store', (store) => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      store,
      accessTokenTtl: 3600,
      env: { BFF_IDLE_TIMEOUT: '600', BFF_SESSION_LIFETIME: '1800' },
    })
  })
  afterAll(() => stack.close())

  it('slides the idle timeout with use and ends an idle session with 401', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const first = await (await jar.get('/bff/user', { headers: CSRF })).json()
    stack.advance(400)
    expect(await status(jar)).toBe(200) // used within 10 minutes: the expiry moves on
    // ...and so does the cookie's, whatever it holds: the browser would drop it at the first.
    // It outlives the session by an hour, so that an expired session can be told from none.
    const cookie = jar.lastSetCookies.find((line) => /^bff=[^;]/.test(line))
    expect(cookie).toMatch(/Max-Age=4200(;|$)/)
    const second = await (await jar.get('/bff/user', { headers: CSRF })).json()
    expect(second.expiresAt).toBeGreaterThanOrEqual(first.expiresAt + 400)
    stack.advance(400)
    expect(await status(jar, '/api/still-here')).toBe(200) // 800 s after login, 400 s idle
    stack.advance(601)
    const idle = await jar.get('/api/too-late', { headers: CSRF })
    expect(idle.status).toBe(401)
    // The dead cookie is removed from the browser, and the session is gone server-side.
    expect(jar.lastSetCookies.some((line) => /^bff=;.*Max-Age=0/.test(line))).toBe(true)
    expect(await status(jar)).toBe(401)
  })

  it('logging out after the session timed out still ends the login at the IdP', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const { logoutUrl } = await (await jar.get('/bff/user', { headers: CSRF })).json()
    stack.advance(601)
    // The BFF session is gone, but the IdP's is not: the logout must reach the IdP, or the next
    // silent login (the demo SPA tries one) would log the browser straight back in.
    const logout = await jar.get(logoutUrl)
    expect(logout.status).toBe(302)
    const endSession = new URL(logout.headers.get('location')!)
    expect(endSession.origin).toBe(new URL(stack.idp.issuer).origin)
    // The IdP then posts a back-channel logout, which this BFF (its clock 601 s ahead) refuses as
    // too old: the IdP logs "back-channel logout failed ... 400". Expected here, and harmless.
    await confirmIdpLogout(jar, endSession)
    // The BFF answers silent logins itself after a logout (test/integration/logout-silent.test.ts);
    // without its marker, the silent login asks the IdP, whose login must be gone too.
    jar.setCookie(stack.url, 'bff-out=; Max-Age=0')
    const silent = await jar.get('/bff/login?prompt=none&returnTo=%2F')
    const atIdp = new URL(redirectLocation(await jar.get(redirectLocation(silent)!))!)
    expect(atIdp.searchParams.get('error')).toBe('login_required')
  })

  it('ends an active session at the absolute lifetime', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    // Right after login the session expires after the idle timeout (600 s) unless used.
    const loggedInAt =
      (await (await jar.get('/bff/user', { headers: CSRF })).json()).expiresAt - 600
    for (let elapsed = 0; elapsed < 1800 - 300; elapsed += 300) {
      stack.advance(300)
      expect(await status(jar)).toBe(200)
    }
    const user = await (await jar.get('/bff/user', { headers: CSRF })).json()
    expect(user.expiresAt).toBe(loggedInAt + 1800) // the slide stops at the absolute lifetime
    stack.advance(301)
    expect(await status(jar)).toBe(401)
    expect(await status(jar, '/api/x')).toBe(401)
  })
})

describe('admin API', () => {
  const token = 'admin-'.repeat(8)
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ store: SERVER_STORE, env: { BFF_ADMIN_TOKEN: token } })
  })
  afterAll(() => stack.close())

  const admin = (path: string, init: RequestInit = {}, bearer = token) =>
    fetch(`${stack.url}${path}`, { ...init, headers: { authorization: `Bearer ${bearer}` } })

  it('refuses requests without the right bearer token', async () => {
    for (const bearer of ['', 'wrong', token.slice(0, -1), `${token}x`]) {
      const response = await admin('/bff/admin/sessions?sub=x', {}, bearer)
      expect(response.status).toBe(401)
      expect(response.headers.get('www-authenticate')).toMatch(/^Bearer/)
    }
    const none = await fetch(`${stack.url}/bff/admin/sessions?sub=x`)
    expect(none.status).toBe(401)
  })

  it("lists a user's sessions without tokens, revokes one, then all", async () => {
    const [a, b, other] = [stack.jar(), stack.jar(), stack.jar()]
    await stack.login(a, { user: 'leo' })
    await stack.login(b, { user: 'leo' })
    await stack.login(other, { user: 'mia' })

    const listed = await admin('/bff/admin/sessions?sub=leo')
    expect(listed.status).toBe(200)
    const text = await listed.text()
    const { sessions } = JSON.parse(text)
    expect(sessions).toHaveLength(2)
    const sessionA = (await stack.sessionOf(a))!
    expect(text).not.toContain(sessionA.accessToken)
    expect(text).not.toContain(sessionA.id)
    expect(sessions.map((s: { sid: string }) => s.sid)).toContain(sessionA.sid)

    // A sid of another user ends nothing.
    const wrongPair = await admin(`/bff/admin/sessions?sub=mia&sid=${sessionA.sid}`, {
      method: 'DELETE',
    })
    expect(await wrongPair.json()).toEqual({ ended: 0 })
    expect(await status(a)).toBe(200)

    const one = await admin(`/bff/admin/sessions?sub=leo&sid=${sessionA.sid}`, { method: 'DELETE' })
    expect(await one.json()).toEqual({ ended: 1 })
    expect(await status(a)).toBe(401)
    expect(await status(b)).toBe(200)

    const all = await admin('/bff/admin/sessions?sub=leo', { method: 'DELETE' })
    expect(await all.json()).toEqual({ ended: 1 })
    expect(await status(b)).toBe(401)
    expect(await status(other)).toBe(200)
  })

  it("in cookie mode: revokes all of a user's sessions, refuses the sid form it cannot check", async () => {
    const cookieMode = await startStack({ store: 'cookie', env: { BFF_ADMIN_TOKEN: token } })
    try {
      const call = (path: string) =>
        fetch(`${cookieMode.url}${path}`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${token}` },
        })
      const [leo, mia] = [cookieMode.jar(), cookieMode.jar()]
      await cookieMode.login(leo, { user: 'leo' })
      await cookieMode.login(mia, { user: 'mia' })
      const alive = async (jar: CookieJar) =>
        (await jar.get(`${cookieMode.url}/bff/user`, { headers: { 'x-csrf': '1' } })).status
      // Leo's sid under Mia's name: the store cannot tell whose it is, so it ends nothing.
      const leoSid = (await cookieMode.sessionOf(leo))!.sid
      const wrongPair = await call(`/bff/admin/sessions?sub=mia&sid=${leoSid}`)
      expect(wrongPair.status).toBe(501)
      expect(await wrongPair.json()).toMatchObject({ error: 'not_supported' })
      expect(await alive(leo)).toBe(200)

      const all = await call('/bff/admin/sessions?sub=leo')
      expect(await all.json()).toEqual({ ended: 0, counted: false })
      expect(await alive(leo)).toBe(401)
      expect(await alive(mia)).toBe(200)
    } finally {
      await cookieMode.close()
    }
  })

  it('needs a sub', async () => {
    expect((await admin('/bff/admin/sessions')).status).toBe(400)
  })

  it('is absent when BFF_ADMIN_TOKEN is not set', async () => {
    const plain = await startStack()
    try {
      const response = await fetch(`${plain.url}/bff/admin/sessions?sub=x`, {
        headers: { authorization: `Bearer ${token}` },
      })
      expect(response.status).toBe(404)
    } finally {
      await plain.close()
    }
  })
})
