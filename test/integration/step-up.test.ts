/**
 * Step-up, against the real IdP (its second factor: src/demo/idp-mfa.ts) on Node and in workerd:
 * `/bff/login?acr=…&maxAge=…` asks the IdP with `acr_values`/`max_age`, the callback holds the new
 * ID token to them (403 `step_up_failed` and the old session untouched when it falls short), and an
 * upstream's RFC 9470 challenge reaches the SPA as 401 `step_up_required`, never as a
 * `WWW-Authenticate`. The demo API's `/admin` (which asks for `acr` "mfa" by introspecting the
 * token) makes the round trip whole.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { introspectWith, startDemoApi, type DemoApi, type Introspect } from '../../src/demo/api.ts'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { MFA_CODE } from '../../src/demo/idp-mfa.ts'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { CSRF, SERVER_STORE, describeStores, startStack, type Stack } from './harness.ts'

const HTML = { accept: 'text/html' }

describeStores(['cookie', SERVER_STORE], 'step-up with the %s store', (store) => {
  let stack: Stack
  let demoApi: DemoApi
  let challenger: Challenger
  beforeAll(async () => {
    // The demo API introspects as the BFF's client, known once the stack (and its IdP) runs.
    const late: { introspect?: Introspect } = {}
    demoApi = await startDemoApi({ introspect: (token) => late.introspect!(token) })
    challenger = await startChallenger()
    stack = await startStack({
      store,
      env: { BFF_API: `/demo/=${demoApi.url}/,/challenge/=${challenger.url}/` },
    })
    late.introspect = introspectWith({ issuer: stack.idp.issuer, ...DEMO_BFF_CLIENT })
  })
  afterAll(async () => {
    await stack?.close()
    await demoApi?.stop()
    await challenger?.close()
  })

  /** `/bff/login` with `query`, through the IdP's pages; the BFF callback's answer. */
  async function login(
    jar: CookieJar,
    query: Record<string, string>,
    { user = 'alice', code }: { user?: string; code?: string } = {}
  ): Promise<Response> {
    const start = await jar.get(`/bff/login?${new URLSearchParams({ returnTo: '/', ...query })}`)
    expect(start.status).toBe(302)
    const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
      login: user,
      password: 'pass',
      code,
    })
    const back = redirectLocation(atIdp)!
    return jar.get(`${stack.url}${back.pathname}${back.search}`, { headers: HTML })
  }

  it('asks the IdP with acr_values and max_age', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login?returnTo=%2Forders&acr=mfa%20gold&maxAge=300')
    expect(start.status).toBe(302)
    const authorize = redirectLocation(start)!
    expect(authorize.origin).toBe(stack.idp.issuer)
    expect(authorize.searchParams.get('acr_values')).toBe('mfa gold')
    expect(authorize.searchParams.get('max_age')).toBe('300')
    // Without them, neither is sent.
    const plain = redirectLocation(await jar.get('/bff/login'))!
    expect(plain.searchParams.has('acr_values')).toBe(false)
    expect(plain.searchParams.has('max_age')).toBe(false)
  })

  it('answers 400 for an acr or maxAge it would not send on', async () => {
    const jar = stack.jar()
    const bad = [
      'acr=',
      'acr=%20',
      'acr=mf%22a',
      'acr=mf%5Ca',
      'acr=mfa%09gold',
      'acr=caf%C3%A9',
      `acr=${Array.from({ length: 11 }, (_, i) => `a${i}`).join('%20')}`,
      `acr=${'a'.repeat(513)}`,
      'acr=mfa&acr=gold',
      'maxAge=',
      'maxAge=-1',
      'maxAge=1.5',
      'maxAge=1e3',
      'maxAge=%2B5',
      'maxAge=abc',
      'maxAge=99999999999',
      'maxAge=1&maxAge=2',
    ]
    for (const query of bad) {
      const res = await jar.get(`/bff/login?returnTo=%2F&${query}`)
      expect([query, res.status]).toEqual([query, 400])
      expect((await res.json()).error).toBe('invalid_request')
      // Nothing started: no transaction cookie, no trip to the IdP.
      expect(jar.lastSetCookies.filter((line) => line.startsWith('bff-tx.'))).toEqual([])
    }
    // The edges that pass.
    for (const query of [`acr=${'a'.repeat(512)}`, 'maxAge=0', 'acr=urn:x:loa:2%20mfa']) {
      expect([query, (await jar.get(`/bff/login?${query}`)).status]).toEqual([query, 302])
    }
  })

  it('steps up with the second factor: the session is replaced by one with acr mfa', async () => {
    const jar = stack.jar()
    expect((await login(jar, {}, { user: 'carol' })).status).toBe(302)
    const before = (await stack.sessionOf(jar))!
    expect(before.claims.acr).toBe('pwd')

    // Signed in at the IdP already: it asks for the one-time code alone.
    const callback = await login(
      jar,
      { returnTo: '/admin?tab=2', acr: 'mfa', maxAge: '60' },
      { user: 'carol', code: MFA_CODE }
    )
    expect(callback.status).toBe(302)
    expect(callback.headers.get('location')).toBe('/admin?tab=2')
    const after = (await stack.sessionOf(jar))!
    expect(after.id).not.toBe(before.id)
    expect(after.sub).toBe('carol')
    expect(after.claims.acr).toBe('mfa')
    expect(after.claims.auth_time).toEqual(expect.any(Number))
    expect(Math.abs((after.claims.auth_time as number) - Date.now() / 1000)).toBeLessThan(30)
    // workerd's log lines arrive shortly after the answer.
    await expect
      .poll(() => stack.logs().some((line) => line.includes('"login.step_up"')))
      .toBe(true)
  })

  it('refuses an ID token without the acr asked for: 403 page, the old session goes on', async () => {
    const jar = stack.jar()
    await login(jar, {}, { user: 'dave' })
    const before = (await stack.sessionOf(jar))!
    const cookiesBefore = jar.cookies(stack.url)

    // The IdP knows no "gold" and answers with its usual "pwd", as an IdP may.
    const callback = await login(jar, { acr: 'gold' }, { user: 'dave' })
    expect(callback.status).toBe(403)
    expect(callback.headers.get('content-type')).toMatch(/^text\/html/)
    const page = await callback.text()
    expect(page).toContain('Not allowed')
    expect(page).toContain('href="/bff/login"')
    // No session cookie was written, and the one the browser has still works.
    expect(jar.lastSetCookies.filter((line) => /^bff(\.\d+)?=/.test(line))).toEqual([])
    expect(jar.cookies(stack.url)).toEqual(cookiesBefore)
    expect((await stack.sessionOf(jar))!.id).toBe(before.id)
    const user = await jar.get('/bff/user', { headers: CSRF })
    expect([user.status, (await user.json()).sub]).toEqual([200, 'dave'])
    expect((await jar.get('/demo/hello', { headers: CSRF })).status).toBe(200)
    await expect
      .poll(() => stack.logs().some((line) => /"login.step_up_failed".*"acr_not_met"/.test(line)))
      .toBe(true)
  })

  it('refuses an ID token whose auth_time is older than maxAge by the BFF clock', async () => {
    const jar = stack.jar()
    await login(jar, {}, { user: 'erin' })
    const before = (await stack.sessionOf(jar))!
    // Within maxAge (and the clock tolerance) it passes: the IdP's login is seconds old.
    const fresh = await login(jar, { maxAge: '60' }, { user: 'erin' })
    expect(fresh.status).toBe(302)
    const steppedUp = (await stack.sessionOf(jar))!
    expect(steppedUp.id).not.toBe(before.id)

    // Ten minutes later by the BFF's clock; the IdP, on real time, sees a fresh login and
    // does not ask again, so its auth_time is ten minutes old to the BFF.
    stack.advance(600)
    const stale = await login(jar, { maxAge: '60' }, { user: 'erin' })
    expect(stale.status).toBe(403)
    expect((await stack.sessionOf(jar))!.id).toBe(steppedUp.id)
    expect((await jar.get('/demo/hello', { headers: CSRF })).status).toBe(200)
    expect(
      stack.logs().some((line) => /"login.step_up_failed".*"auth_time_too_old"/.test(line))
    ).toBe(true)
  })

  it('a silent login cannot step up: login_required goes back to returnTo', async () => {
    const jar = stack.jar()
    await login(jar, {}, { user: 'frank' })
    const start = await jar.get('/bff/login?prompt=none&acr=mfa&returnTo=%2Fpage')
    const atIdp = await jar.follow(start)
    const back = redirectLocation(atIdp)!
    expect(back.searchParams.get('error')).toBe('login_required')
    const callback = await jar.get(`${stack.url}${back.pathname}${back.search}`)
    expect(callback.headers.get('location')).toBe('/page?error=login_required')
    expect((await stack.sessionOf(jar))!.claims.acr).toBe('pwd')
  })

  it('turns the demo API’s RFC 9470 challenge into step_up_required, and the step-up gets through', async () => {
    const jar = stack.jar()
    await login(jar, {}, { user: 'grace' })
    expect((await jar.get('/demo/hello', { headers: CSRF })).status).toBe(200)

    const refused = await jar.get('/demo/admin', { headers: CSRF })
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toBeNull()
    expect(refused.headers.get('cache-control')).toBe('no-store')
    const body = await refused.json()
    expect(body).toEqual({
      error: 'step_up_required',
      message: expect.any(String),
      acr: ['mfa'],
      loginUrl: '/bff/login?returnTo=%2F&acr=mfa',
    })
    // From a page of the SPA that says where it is, the login comes back there.
    const fromPage = await jar.get('/demo/admin', {
      headers: { ...CSRF, referer: `${stack.baseUrl}/settings?x=1` },
    })
    expect((await fromPage.json()).loginUrl).toBe('/bff/login?returnTo=%2Fsettings%3Fx%3D1&acr=mfa')
    // A Referer of another site is not where the user goes back to.
    const foreign = await jar.get('/demo/admin', {
      headers: { ...CSRF, referer: 'https://evil.example/settings' },
    })
    expect((await foreign.json()).loginUrl).toBe('/bff/login?returnTo=%2F&acr=mfa')

    // The SPA follows loginUrl back to its own page; the IdP asks for the code.
    const loginUrl = new URL(body.loginUrl, stack.url)
    const callback = await login(
      jar,
      { ...Object.fromEntries(loginUrl.searchParams), returnTo: '/' },
      { user: 'grace', code: MFA_CODE }
    )
    expect(callback.status).toBe(302)
    const admin = await jar.get('/demo/admin', { headers: CSRF })
    expect(admin.status).toBe(200)
    expect(await admin.json()).toMatchObject({ sub: 'grace', acr: 'mfa' })
  })

  it('maps only a well-formed RFC 9470 challenge; every WWW-Authenticate is stripped', async () => {
    const jar = stack.jar()
    await login(jar, {}, { user: 'heidi' })
    const call = (status: number, ...challenges: string[]) => {
      const query = new URLSearchParams({ status: String(status) })
      for (const challenge of challenges) query.append('www', challenge)
      return jar.get(`/challenge/x?${query}`, { headers: CSRF })
    }
    const stepUp = async (res: Response) => {
      expect(res.headers.get('www-authenticate')).toBeNull()
      expect(res.status).toBe(401)
      const body = await res.json()
      expect(body.error).toBe('step_up_required')
      return body
    }

    expect(
      await stepUp(
        await call(
          401,
          'Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:loa:3 mfa", max_age=120'
        )
      )
    ).toMatchObject({
      acr: ['urn:loa:3', 'mfa'],
      maxAge: 120,
      loginUrl: '/bff/login?returnTo=%2F&acr=urn%3Aloa%3A3+mfa&maxAge=120',
    })
    // Among other challenges, in one line or several, whatever the case of scheme and names.
    expect(
      await stepUp(
        await call(
          401,
          'Basic realm="api", BEARER Error="insufficient_user_authentication", MAX_AGE="5"'
        )
      )
    ).toMatchObject({ maxAge: 5 })
    expect(
      await stepUp(
        await call(
          401,
          'Negotiate abc==',
          'Bearer realm="x, y", error=insufficient_user_authentication, acr_values=mfa'
        )
      )
    ).toMatchObject({ acr: ['mfa'] })
    expect(challenger.answered).toBeGreaterThan(0)

    // Anything else is the upstream's own answer, without its WWW-Authenticate.
    const passedOn = [
      [401, 'Basic realm="upstream"'],
      [401, 'Bearer error="invalid_token"'],
      [401, 'Bearer error="insufficient_user_authentication"'], // asks for nothing
      [401, 'Bearer error="insufficient_user_authentication", acr_values="mfa'], // unterminated
      [401, 'Bearer error="insufficient_user_authentication", acr_values="a\\"b"'],
      [401, 'Bearer error="insufficient_user_authentication", max_age=-5'],
      [401, 'Bearer error="insufficient_user_authentication", max_age=1, max_age=2'],
      [401, 'Bearer error="insufficient_user_authentication" acr_values="mfa"'],
      [403, 'Bearer error="insufficient_user_authentication", acr_values="mfa"'],
    ] as const
    for (const [status, challenge] of passedOn) {
      const res = await call(status, challenge)
      expect([challenge, res.status]).toEqual([challenge, status])
      expect(res.headers.get('www-authenticate')).toBeNull()
      expect(await res.json()).toEqual({ from: 'upstream' })
    }
  })
})

interface Challenger {
  url: string
  /** Answers given so far. */
  answered: number
  close(): Promise<void>
}

/** An upstream that answers `?status=` with each `?www=` as a WWW-Authenticate line. */
async function startChallenger(): Promise<Challenger> {
  const state = { answered: 0 }
  const server: Server = createServer((req, res) => {
    const query = new URL(req.url ?? '/', 'http://x').searchParams
    req.resume()
    state.answered++
    res.writeHead(Number(query.get('status') ?? 200), {
      'content-type': 'application/json',
      'www-authenticate': query.getAll('www'),
    })
    res.end(JSON.stringify({ from: 'upstream' }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get answered() {
      return state.answered
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
