/**
 * Two isolates of the Worker, as two Cloudflare machines would run it: separate memory, shared
 * Durable Objects. What one isolate does to a session (a refresh, a logout) must hold in the other,
 * which is the point of keeping it in the objects. The Workers counterpart of test/cluster.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { CookieJar } from '../../helpers/http.ts'
import { confirmIdpLogout } from '../../helpers/idp-login.ts'
import { CSRF, describeStores, startStack, type Stack } from '../../integration/harness.ts'

/** The Cookie header the browser would send, to reach another isolate with the same session. */
function cookieHeader(stack: Stack, jar: CookieJar): string {
  return Object.entries(jar.cookies(stack.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

describeStores(['durable-object', 'cookie'], 'two isolates with the %s store', (store) => {
  let stack: Stack
  let urls: string[]
  beforeAll(async () => {
    stack = await startStack({ store, isolates: 1 })
    urls = [stack.url, ...stack.isolateUrls]
  })
  afterAll(() => stack.close())

  const user = (url: string, cookie: string) =>
    fetch(`${url}/bff/user`, { headers: { ...CSRF, cookie } })

  it('spends the refresh token once for 25 + 25 concurrent calls with an expired token', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'olga' })
    const cookie = cookieHeader(stack, jar)
    stack.idp.resetCounters()
    stack.advance(120)
    const responses = await Promise.all(
      urls.flatMap((url) =>
        Array.from({ length: 25 }, (_, i) =>
          fetch(`${url}/api/burst/${i}`, { headers: { ...CSRF, cookie } })
        )
      )
    )
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200))
    expect(stack.idp.grants.refresh).toBe(1)
    const tokens = new Set(stack.upstream.requests.slice(-50).map((r) => r.headers.authorization))
    expect(tokens.size).toBe(1)
  })

  it('a logout in one isolate ends the session in the other, copied cookies included', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'pavel' })
    const cookie = cookieHeader(stack, jar)
    for (const url of urls) expect((await user(url, cookie)).status).toBe(200)
    const logout = await fetch(`${urls[1]}/bff/logout`, {
      method: 'POST',
      headers: { ...CSRF, cookie },
      redirect: 'manual',
    })
    expect(logout.status).toBe(302)
    for (const url of urls) expect((await user(url, cookie)).status).toBe(401)
  })

  it('a back-channel logout delivered to one isolate ends the session in the other', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'quinn' })
    const cookie = cookieHeader(stack, jar)
    expect((await user(urls[1]!, cookie)).status).toBe(200)
    // The IdP posts the logout token to the first isolate (its registered back-channel URI).
    stack.idp.resetCounters()
    await confirmIdpLogout(jar, `${stack.idp.issuer}/session/end`)
    expect(stack.idp.backchannel).toEqual({ success: 1, error: 0 })
    for (const url of urls) expect((await user(url, cookie)).status).toBe(401)
  })
})
