/**
 * `authorize`: an external policy decision point in OPA's REST shape, asked before the upstream
 * call, on Node and in workerd. The PDP is a real HTTP server in this process whose rule each test
 * sets (test/helpers/pdp.ts). A refusal never reaches the upstream; a PDP that fails never allows.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { subjectHash } from '../../src/core/observe/log.ts'
import type { CookieJar } from '../helpers/http.ts'
import { startPdp, type Pdp } from '../helpers/pdp.ts'
import { freePort } from '../helpers/upstream.ts'
import { CSRF, SERVER_STORE, startStack, type Stack } from './harness.ts'

const ACCESS_TOKEN_TTL = 600

describe('authorize (an external policy decision point)', () => {
  let pdp: Pdp
  let stack: Stack
  let jar: CookieJar

  beforeAll(async () => {
    pdp = await startPdp()
    const nobody = `http://127.0.0.1:${await freePort()}/v1/data/bff/allow`
    stack = await startStack({
      store: SERVER_STORE,
      accessTokenTtl: ACCESS_TOKEN_TTL,
      idpClaims: { realm_access: { roles: ['reader'] } },
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          demo: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
            scopes: ['openid', 'profile', 'email', 'offline_access'],
            claims: { roles: 'realm_access.roles' },
          },
        },
        routes: [
          { prefix: '/open/', upstream: `${upstream}/open/`, authorize: { url: pdp.url } },
          {
            prefix: '/cached/',
            upstream: `${upstream}/cached/`,
            authorize: { url: pdp.url, cacheSeconds: 60 },
          },
          {
            // Longer than the access token lives: only a change of session drops its decisions.
            prefix: '/long/',
            upstream: `${upstream}/long/`,
            authorize: { url: pdp.url, cacheSeconds: 3600 },
          },
          { prefix: '/down/', upstream: `${upstream}/down/`, authorize: { url: nobody } },
          {
            prefix: '/public/',
            upstream: `${upstream}/public/`,
            token: 'none',
            authorize: { url: pdp.url, cacheSeconds: 60 },
          },
          { prefix: '/api/', upstream: `${upstream}/api/` },
        ],
      }),
    })
    jar = stack.jar()
    await stack.login(jar)
  })
  afterAll(async () => {
    await stack?.close()
    await pdp?.close()
  })
  beforeEach(() => {
    pdp.calls.length = 0
    pdp.decide = () => ({ body: { result: true } })
  })

  const reached = (prefix: string) =>
    stack.upstream.requests.filter((r) => r.url.startsWith(prefix)).length

  /** The log lines of `event` so far; workerd's arrive shortly after the response. */
  async function logged(event: string, count: number): Promise<Record<string, unknown>[]> {
    const lines = () =>
      stack
        .logs()
        .filter((line) => line.includes(`"event":"${event}"`))
        .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>)
    for (let i = 0; i < 100 && lines().length < count; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return lines()
  }

  it('POSTs exactly { input: { route, method, path, idp, sub, claims, acr, scopes } }, never a token', async () => {
    const response = await jar.post('/open/orders/7/lines?secret=x', {
      headers: CSRF,
      json: { qty: 1 },
    })
    expect(response.status).toBe(200)
    expect(pdp.calls).toHaveLength(1)
    const [call] = pdp.calls
    const session = (await stack.sessionOf(jar))!
    expect(call!.method).toBe('POST')
    expect(call!.url).toBe('/v1/data/bff/allow')
    expect(call!.headers['content-type']).toBe('application/json')
    expect(JSON.parse(call!.raw)).toEqual({
      input: {
        route: '/open/',
        method: 'POST',
        path: 'orders/7/lines',
        idp: 'demo',
        sub: 'alice',
        // The session's claims, plus the normalised (mapped) ones, as /bff/user shows them.
        claims: { ...session.claims, roles: ['reader'] },
        acr: session.claims.acr,
        scopes: session.scope!.split(' '),
      },
    })
    expect(session.claims.acr).toEqual(expect.any(String))
    expect(session.scope!.split(' ')).toContain('openid')
    // Nothing that authenticates the user or the BFF.
    expect(call!.headers.authorization).toBeUndefined()
    expect(call!.headers.cookie).toBeUndefined()
    for (const secret of [
      session.accessToken,
      session.refreshToken!,
      session.idToken!,
      session.id,
      ...Object.values(jar.cookies(stack.url)),
    ]) {
      expect(call!.raw).not.toContain(secret)
    }
  })

  it('allows on { result: true } and { result: { allow: true } } only; anything else is 403 forbidden', async () => {
    const cases: [unknown, number][] = [
      [{ result: true }, 200],
      [{ result: { allow: true } }, 200],
      [{ result: { allow: true, reason: 'ok' } }, 200],
      [{ result: false }, 403],
      [{ result: { allow: false } }, 403],
      [{}, 403], // OPA's answer when the rule is undefined
      [{ result: 'true' }, 403],
      [{ result: { allow: 'true' } }, 403],
      [{ result: 1 }, 403],
      [{ allow: true }, 403],
      [[true], 403],
      [true, 403],
      [null, 403],
    ]
    for (const [body, status] of cases) {
      pdp.decide = () => ({ body })
      const before = reached('/open/')
      const response = await jar.get('/open/things', { headers: CSRF })
      expect(response.status, JSON.stringify(body)).toBe(status)
      if (status === 403) {
        expect(await response.json()).toMatchObject({ error: 'forbidden' })
        expect(reached('/open/'), JSON.stringify(body)).toBe(before)
      } else {
        expect(reached('/open/')).toBe(before + 1)
      }
    }
    const denials = (await logged('policy.denied', 1)).filter((l) => l.key === 'authorize')
    expect(denials.length).toBeGreaterThan(0)
    expect(denials[0]).toMatchObject({
      level: 'warn',
      route: '/open/',
      reason: 'forbidden',
      key: 'authorize',
      sub: await subjectHash('alice'),
    })
  })

  it('decides by the rule: the method and the path reach it', async () => {
    pdp.decide = (input) => ({
      body: { result: { allow: input.method === 'GET' && input.path !== 'admin/users' } },
    })
    expect((await jar.get('/open/orders', { headers: CSRF })).status).toBe(200)
    expect((await jar.get('/open/admin/users', { headers: CSRF })).status).toBe(403)
    expect((await jar.request('DELETE', '/open/orders', { headers: CSRF })).status).toBe(403)
  })

  it('a PDP that fails never allows: 503 policy_unavailable, nothing reaches the upstream', async () => {
    const failures: [string, () => ReturnType<Pdp['decide']>][] = [
      ['500', () => ({ status: 500, body: { result: true } })],
      ['404', () => ({ status: 404, body: { result: true } })],
      ['302', () => ({ status: 302, body: { result: true } })],
      ['not JSON', () => ({ body: '{"result": true' })],
      ['HTML', () => ({ body: '<html>allow</html>' })],
      ['too large', () => ({ body: { result: true, pad: 'x'.repeat(100_000) } })],
    ]
    for (const [name, decide] of failures) {
      pdp.decide = decide
      const before = reached('/open/')
      const response = await jar.get('/open/things', { headers: CSRF })
      expect(response.status, name).toBe(503)
      expect(await response.json(), name).toMatchObject({ error: 'policy_unavailable' })
      expect(reached('/open/'), name).toBe(before)
    }
    const unavailable = (await logged('policy.denied', 1)).filter(
      (l) => l.reason === 'policy_unavailable'
    )
    expect(unavailable[0]).toMatchObject({ route: '/open/', key: 'authorize', cause: 'status 500' })
  })

  it('a PDP slower than 2 s, or down, refuses with 503', async () => {
    pdp.decide = () => ({ body: { result: true }, delayMs: 4000 })
    const started = Date.now()
    const slow = await jar.get('/open/slow', { headers: CSRF })
    const took = Date.now() - started
    expect(slow.status).toBe(503)
    expect(await slow.json()).toMatchObject({ error: 'policy_unavailable' })
    expect(took).toBeGreaterThanOrEqual(1900)
    expect(took).toBeLessThan(3900)

    const before = reached('/down/')
    const down = await jar.get('/down/things', { headers: CSRF })
    expect(down.status).toBe(503)
    expect(await down.json()).toMatchObject({ error: 'policy_unavailable' })
    expect(reached('/down/')).toBe(before)
  })

  it('does not remember a failure: the next call asks again', async () => {
    pdp.decide = () => ({ status: 500 })
    expect((await jar.get('/cached/retry', { headers: CSRF })).status).toBe(503)
    pdp.decide = () => ({ body: { result: true } })
    expect((await jar.get('/cached/retry', { headers: CSRF })).status).toBe(200)
    expect(pdp.calls).toHaveLength(2)
  })

  it('asks about a call without a session (token none) with no user fields, and never caches it', async () => {
    const anonymous = stack.jar()
    expect((await anonymous.get('/public/news', { headers: CSRF })).status).toBe(200)
    expect(pdp.calls.map((call) => JSON.parse(call.raw))).toEqual([
      { input: { route: '/public/', method: 'GET', path: 'news' } },
    ])
    pdp.decide = () => ({ body: { result: false } })
    expect((await anonymous.get('/public/news', { headers: CSRF })).status).toBe(403)
    expect(pdp.calls).toHaveLength(2)
  })

  it('asks on every call without cacheSeconds', async () => {
    for (let i = 0; i < 3; i++) await jar.get('/open/same', { headers: CSRF })
    expect(pdp.calls).toHaveLength(3)
  })

  it('keeps a decision for cacheSeconds, for this session, method and path only', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await jar.get('/cached/orders/1', { headers: CSRF })).status).toBe(200)
    }
    expect(pdp.calls).toHaveLength(1)
    // A denial is kept as well.
    pdp.decide = () => ({ body: { result: false } })
    expect((await jar.get('/cached/orders/2', { headers: CSRF })).status).toBe(403)
    expect((await jar.get('/cached/orders/2', { headers: CSRF })).status).toBe(403)
    expect(pdp.calls).toHaveLength(2)
    // Another method or path is another question: a GET allowed says nothing of a DELETE.
    expect((await jar.request('DELETE', '/cached/orders/1', { headers: CSRF })).status).toBe(403)
    expect((await jar.get('/cached/orders/1/x', { headers: CSRF })).status).toBe(403)
    expect(pdp.calls).toHaveLength(4)
    // Another user's session never gets alice's decision.
    const bob = stack.jar()
    await stack.login(bob, { user: 'bob' })
    expect((await bob.get('/cached/orders/1', { headers: CSRF })).status).toBe(403)
    expect(pdp.calls.at(-1)!.input.sub).toBe('bob')
    expect((await jar.get('/cached/orders/1', { headers: CSRF })).status).toBe(200)
    expect(pdp.calls).toHaveLength(5)

    // Past cacheSeconds (the access token still fresh), the PDP is asked again.
    stack.advance(61)
    expect((await jar.get('/cached/orders/1', { headers: CSRF })).status).toBe(403)
    expect(pdp.calls).toHaveLength(6)
  })

  it('drops the decisions when the session changes: refresh, new login, logout', async () => {
    const ask = async (session: CookieJar) => {
      const response = await session.get('/long/me', { headers: CSRF })
      expect(response.status).toBe(200)
    }
    await ask(jar)
    await ask(jar)
    expect(pdp.calls).toHaveLength(1)

    // A refresh (a new generation of the session): asked again.
    const before = (await stack.sessionOf(jar))!
    stack.advance(ACCESS_TOKEN_TTL + 1)
    await ask(jar)
    expect((await stack.sessionOf(jar))!.generation).toBe(before.generation + 1)
    expect(pdp.calls).toHaveLength(2)
    await ask(jar)
    expect(pdp.calls).toHaveLength(2)

    // A new login in the same browser (as a step-up re-login is): asked again.
    await stack.login(jar)
    await ask(jar)
    expect(pdp.calls).toHaveLength(3)

    // Logout, then login: asked again; and logged out, the call stops before the PDP.
    expect((await jar.post('/bff/logout', { headers: CSRF })).status).toBe(302)
    expect((await jar.get('/long/me', { headers: CSRF })).status).toBe(401)
    expect(pdp.calls).toHaveLength(3)
    await stack.login(jar)
    await ask(jar)
    expect(pdp.calls).toHaveLength(4)
  })
})
