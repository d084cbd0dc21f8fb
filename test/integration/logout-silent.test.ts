/**
 * After a logout, silent logins (`prompt=none`) are answered `login_required` by the BFF itself
 * until the user logs in for real. An IdP without an end-session endpoint (django-oauth-toolkit)
 * keeps its own login alive, and the SPA's silent login on the landing page signed the user
 * straight back in (found against django-oauth-toolkit 1.7; the test IdP here has a live login
 * too, since the test never visits its end-session page).
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { redirectLocation } from '../helpers/http.ts'
import { CSRF, startStack, type Stack } from './harness.ts'

let stack: Stack
beforeAll(async () => {
  stack = await startStack()
})
afterAll(() => stack.close())

it('a logout stops silent logins in this browser until the next real login', async () => {
  const jar = stack.jar()
  expect((await stack.login(jar)).status).toBe(302)

  // Before any logout, a silent login goes to the IdP.
  const silentBefore = await jar.get('/bff/login?prompt=none&returnTo=%2Fhome')
  expect(redirectLocation(silentBefore)!.origin).toBe(stack.idp.issuer)

  const logout = await jar.post('/bff/logout', { headers: CSRF })
  expect(logout.status).toBe(302)
  expect(jar.lastSetCookies.some((line) => /^bff-out=1;.*HttpOnly/.test(line))).toBe(true)

  // The IdP's login is still alive (its end-session page was never visited), yet the silent
  // login is answered here, as the IdP answers when nobody is logged in.
  const silent = await jar.get('/bff/login?prompt=none&returnTo=%2Fhome')
  expect(silent.status).toBe(302)
  expect(silent.headers.get('location')).toBe('/home?error=login_required')
  expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)

  // A real login works, and silent logins go to the IdP again afterwards.
  const start = await jar.get('/bff/login?returnTo=%2F')
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
    login: 'alice',
    password: 'pass',
  })
  const callback = new URL(redirectLocation(atIdp)!)
  const done = await jar.get(`${stack.url}${callback.pathname}${callback.search}`)
  expect(done.status).toBe(302)
  expect(jar.lastSetCookies.some((line) => /^bff-out=;.*Max-Age=0/.test(line))).toBe(true)
  expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
  const silentAfter = await jar.get('/bff/login?prompt=none&returnTo=%2Fhome')
  expect(redirectLocation(silentAfter)!.origin).toBe(stack.idp.issuer)
})
