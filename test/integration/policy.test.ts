/**
 * Route policies end to end (DESIGN.md "Route policies"), routes from the config file, against the
 * real IdP, on Node and in workerd, in every store: methods, token modes `user`, `optional` and
 * `none`, `idps`, `require` through the IdP's claims map, granted `scopes`, step-up (`acr`,
 * `maxAge`), checked in DESIGN's order. Every refusal is shown never reaching the upstream, and
 * logged as one `policy.denied` line.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { subjectHash } from '../../src/core/observe/log.ts'
import type { CookieJar } from '../helpers/http.ts'
import { ALL_STORES, CSRF, describeStores, startStack, type Stack } from './harness.ts'

/** Routes of the test's config file, each a policy under test; all lead to the one upstream. */
const ROUTES = [
  { prefix: '/api/' },
  { prefix: '/get-only/', methods: ['GET'] },
  { prefix: '/public/', token: 'none' },
  { prefix: '/maybe/', token: 'optional' },
  { prefix: '/maybe-admin/', token: 'optional', require: { roles: 'admin' } },
  { prefix: '/corp/', idps: ['corp'] },
  // Keycloak-style nested roles through the claims map; an array claim contains the value.
  { prefix: '/admin/', require: { roles: 'admin' } },
  { prefix: '/auditors/', require: { roles: ['auditor', 'owner'] } },
  { prefix: '/alice/', require: { mail: 'alice@example.com', email_verified: true } },
  { prefix: '/profile/', scopes: ['email', 'profile'] },
  // Requested (the file's scopes) but not granted: the IdP does not know it.
  { prefix: '/orders/', scopes: ['email', 'orders:read', 'orders:write'] },
  { prefix: '/mfa/', acr: ['mfa', 'hwk'] },
  { prefix: '/recent/', maxAge: 300 },
  // Fails every check: each request gets the answer of the first check it fails.
  {
    prefix: '/everything/',
    methods: ['GET'],
    require: { roles: 'auditor' },
    scopes: ['orders:read'],
    acr: 'mfa',
  },
  { prefix: '/scope-then-step-up/', scopes: ['orders:read'], acr: 'mfa' },
]

describeStores(ALL_STORES, 'route policies with the %s store', (store) => {
  let stack: Stack
  let alice: CookieJar
  let anonymous: CookieJar

  beforeAll(async () => {
    stack = await startStack({
      store,
      idpClaims: { realm_access: { roles: ['admin', 'user'] } },
      // auth_time in every ID token, as a max_age login would give it.
      clientMetadata: { require_auth_time: true },
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          corp: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
            scopes: 'openid profile email offline_access orders:read',
            claims: { roles: 'realm_access.roles', mail: 'email' },
          },
        },
        routes: ROUTES.map((route) => ({ ...route, upstream: `${upstream}/up/` })),
      }),
    })
    alice = stack.jar()
    expect((await stack.login(alice)).status).toBe(302)
    anonymous = stack.jar()
  })
  afterAll(() => stack?.close())

  /** The upstream's hits so far. */
  const hits = () => stack.upstream.requests.length

  /** Sends a call that must be refused: the upstream is never reached. */
  async function refused(
    jar: CookieJar,
    method: string,
    path: string,
    headers: HeadersInit = CSRF
  ) {
    const before = hits()
    const response = await jar.request(method, path, { headers })
    const body = method === 'HEAD' ? null : await response.json()
    expect(hits(), `${method} ${path} reached the upstream`).toBe(before)
    expect(response.headers.get('cache-control')).toBe('no-store')
    return { status: response.status, body, headers: response.headers }
  }

  /** Sends a call that must pass: the upstream gets it, with what Authorization. */
  async function passed(jar: CookieJar, path: string, headers: HeadersInit = CSRF) {
    const before = hits()
    const response = await jar.get(path, { headers })
    expect(response.status, `${path}: ${await response.clone().text()}`).toBe(200)
    await response.text()
    expect(hits()).toBe(before + 1)
    return stack.upstream.requests.at(-1)!.headers.authorization
  }

  /** The `policy.denied` lines logged so far (workerd's arrive shortly after the answer). */
  async function denials(count: number) {
    const lines = () =>
      stack
        .logs()
        .filter((line) => line.includes('"policy.denied"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>)
    for (let i = 0; i < 200 && lines().length < count; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return lines()
  }

  it('methods: 405 method_not_allowed with Allow; allowed methods pass', async () => {
    const post = await refused(alice, 'POST', '/get-only/x')
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET')
    expect(post.body.error).toBe('method_not_allowed')
    expect((await refused(alice, 'HEAD', '/get-only/x')).status).toBe(405)
    await passed(alice, '/get-only/x')
    // The default methods elsewhere: PATCH passes, a WebDAV method does not.
    expect((await alice.request('PATCH', '/api/x', { headers: CSRF })).status).toBe(200)
    expect((await refused(alice, 'PROPFIND', '/api/x')).status).toBe(405)
  })

  it('token user (the default): 401 unauthenticated without a session; the session token with one', async () => {
    const answer = await refused(anonymous, 'GET', '/api/x')
    expect([answer.status, answer.body.error]).toEqual([401, 'unauthenticated'])
    const session = (await stack.sessionOf(alice))!
    expect(await passed(alice, '/api/x')).toBe(`Bearer ${session.accessToken}`)
  })

  it('token none: no session needed, no Authorization, not even one the browser sent', async () => {
    const forged = { ...CSRF, authorization: 'Bearer from-the-browser' }
    expect(await passed(anonymous, '/public/x', forged)).toBeUndefined()
    expect(await passed(alice, '/public/x', forged)).toBeUndefined()
    // CSRF still comes first.
    expect((await refused(anonymous, 'GET', '/public/x', {})).body.error).toBe('csrf')
  })

  it("token optional: the user's token with a session, no Authorization without", async () => {
    const forged = { ...CSRF, authorization: 'Bearer from-the-browser' }
    expect(await passed(anonymous, '/maybe/x', forged)).toBeUndefined()
    const session = (await stack.sessionOf(alice))!
    expect(await passed(alice, '/maybe/x', forged)).toBe(`Bearer ${session.accessToken}`)
    // A check only a user can meet needs a session, even on an optional route.
    const answer = await refused(anonymous, 'GET', '/maybe-admin/x')
    expect([answer.status, answer.body.error]).toEqual([401, 'unauthenticated'])
    await passed(alice, '/maybe-admin/x')
  })

  it('idps and require: sessions of the IdP, claims through the map; else 403 forbidden', async () => {
    expect((await stack.sessionOf(alice))!.idp).toBe('corp')
    await passed(alice, '/corp/x')
    await passed(alice, '/admin/x')
    await passed(alice, '/alice/x')
    const auditors = await refused(alice, 'GET', '/auditors/x')
    expect([auditors.status, auditors.body.error]).toEqual([403, 'forbidden'])
    const bob = stack.jar()
    await stack.login(bob, { user: 'bob' })
    expect((await refused(bob, 'GET', '/alice/x')).body).toEqual({
      error: 'forbidden',
      message: expect.any(String),
    })
  })

  it('scopes: those granted (not merely requested) must include the route’s; else 403 listing the missing', async () => {
    expect((await stack.sessionOf(alice))!.scope?.split(' ')).toEqual(
      expect.arrayContaining(['openid', 'profile', 'email'])
    )
    await passed(alice, '/profile/x')
    const orders = await refused(alice, 'GET', '/orders/x')
    expect(orders.status).toBe(403)
    expect(orders.body).toEqual({
      error: 'insufficient_scope',
      message: expect.any(String),
      scopes: ['orders:read', 'orders:write'],
    })
  })

  it('step-up: acr must be one of the route’s, else 401 step_up_required with the login URL', async () => {
    const mfa = await refused(alice, 'GET', '/mfa/x', {
      ...CSRF,
      referer: `${stack.baseUrl}/reports/7?tab=2`,
    })
    expect(mfa.status).toBe(401)
    expect(mfa.body).toEqual({
      error: 'step_up_required',
      message: expect.any(String),
      acr: ['mfa', 'hwk'],
      loginUrl: '/bff/login?returnTo=%2Freports%2F7%3Ftab%3D2&acr=mfa+hwk',
    })
    // A Referer of another site (or none) is no place to return to.
    const elsewhere = await refused(alice, 'GET', '/mfa/x', {
      ...CSRF,
      referer: 'https://evil.example/reports',
    })
    expect(elsewhere.body.loginUrl).toBe('/bff/login?returnTo=%2F&acr=mfa+hwk')
  })

  it('checks in DESIGN’s order: each request gets the answer of the first check it fails', async () => {
    const at = async (jar: CookieJar, method: string, path: string, headers?: HeadersInit) => {
      const { status, body } = await refused(jar, method, path, headers)
      return [status, body.error]
    }
    expect(await at(anonymous, 'POST', '/everything/x', {})).toEqual([403, 'csrf'])
    expect(await at(anonymous, 'POST', '/everything/x')).toEqual([405, 'method_not_allowed'])
    expect(await at(anonymous, 'GET', '/everything/x')).toEqual([401, 'unauthenticated'])
    expect(await at(alice, 'GET', '/everything/x')).toEqual([403, 'forbidden'])
    expect(await at(alice, 'GET', '/scope-then-step-up/x')).toEqual([403, 'insufficient_scope'])
  })

  it('logs each refusal as policy.denied: the route’s prefix, the reason, a subject hash, no token', async () => {
    const before = (await denials(0)).length
    await refused(alice, 'GET', '/auditors/secret/path?q=1')
    await refused(anonymous, 'GET', '/api/private/7')
    const lines = (await denials(before + 2)).slice(before)
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatchObject({
      event: 'policy.denied',
      route: '/auditors/',
      reason: 'forbidden',
      sub: await subjectHash('alice'),
    })
    expect(lines[1]).toMatchObject({ route: '/api/', reason: 'unauthenticated' })
    expect(lines[1]!.sub).toBeUndefined()
    const all = stack.logs().join('\n')
    const session = (await stack.sessionOf(alice))!
    expect(all).not.toContain(session.accessToken)
    expect(all).not.toContain('/auditors/secret')
    expect(all).not.toContain('"sub":"alice"')
  })

  it('/bff/user answers idp, acr, authTime and the mapped claims', async () => {
    const user = await (await alice.get('/bff/user', { headers: CSRF })).json()
    expect(user).toMatchObject({ sub: 'alice', idp: 'corp', logoutUrl: expect.any(String) })
    expect(user.authTime).toBeGreaterThan(Date.now() / 1000 - 600)
    // The demo IdP says how the user signed in: a password alone.
    expect(user.acr).toBe('pwd')
    expect(user.claims).toMatchObject({ roles: ['admin', 'user'], mail: 'alice@example.com' })
  })

  // Moves the BFF's clock: last.
  it('step-up: auth_time must be within maxAge on the BFF’s clock, across refreshes', async () => {
    await passed(alice, '/recent/x')
    stack.advance(301)
    const stale = await refused(alice, 'GET', '/recent/x')
    expect(stale.status).toBe(401)
    expect(stale.body).toEqual({
      error: 'step_up_required',
      message: expect.any(String),
      maxAge: 300,
      loginUrl: '/bff/login?returnTo=%2F&maxAge=300',
    })
    // The token was refreshed meanwhile; the login's auth_time stays what it was.
    await passed(alice, '/api/x')
    expect((await refused(alice, 'GET', '/recent/x')).status).toBe(401)
  })
})
