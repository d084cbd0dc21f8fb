/**
 * The audit trail (docs/audit.md) end to end, against the real IdP, on Node and in workerd: a
 * scripted session writes exactly the expected `"audit": true` lines, in order, each with the
 * subject and session as hashes, the IdP, the client's address, the route as configured and a
 * reason that is a code. Then a scan: after a whole session (logins, calls, a refresh, a refused
 * refresh, logouts), no token, code, cookie value or secret the test saw go by is in the log.
 */
import * as client from 'openid-client'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { sessionHash } from '../../src/core/observe/audit.ts'
import { subjectHash } from '../../src/core/observe/log.ts'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { MFA_CODE } from '../../src/demo/idp-mfa.ts'
import type { Session } from '../../src/core/session/types.ts'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import { confirmIdpLogout, loginAtIdp } from '../helpers/idp-login.ts'
import { startPdp, type Pdp } from '../helpers/pdp.ts'
import { CSRF, SERVER_STORE, describeStores, startStack, type Stack } from './harness.ts'

const ADMIN_TOKEN = 'audit-admin-token-0123456789abcdef0123456789'
const IDP = 'corp'
/** The fields an audit line may have: anything else would be a leak waiting to happen. */
const FIELDS = new Set([
  'time',
  'level',
  'event',
  'audit',
  'sub',
  'idp',
  'session',
  'ip',
  'route',
  'reason',
  'check',
  'count',
  'acr',
])

type Line = Record<string, unknown>

describeStores(['cookie', SERVER_STORE], 'the audit trail with the %s store', (store) => {
  let stack: Stack
  let pdp: Pdp
  /** Every secret value the test saw go by: none may appear in the log. */
  const secrets = new Map<string, string>()
  const keep = (what: string, value: string | undefined) => {
    if (value && value.length >= 8 && !secrets.has(value)) secrets.set(value, what)
  }

  beforeAll(async () => {
    pdp = await startPdp()
    // The policy decision point refuses everyone.
    pdp.decide = () => ({ body: { result: false } })
    stack = await startStack({
      store,
      env: { BFF_ADMIN_TOKEN: ADMIN_TOKEN, TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          [IDP]: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
            scopes: 'openid profile email offline_access',
          },
        },
        routes: [
          { prefix: '/api/', upstream: `${upstream}/up/` },
          { prefix: '/mfa/', upstream: `${upstream}/up/`, acr: 'mfa' },
          { prefix: '/pdp/', upstream: `${upstream}/up/`, authorize: { url: pdp.url } },
        ],
      }),
    })
    keep('client secret', DEMO_BFF_CLIENT.clientSecret)
    keep('session secret', stack.secret)
    keep('admin token', ADMIN_TOKEN)
  })
  afterAll(async () => {
    await stack?.close()
    await pdp?.close()
  })

  /** The audit lines so far (workerd's arrive shortly after the answer): at least `count`. */
  async function trail(count: number): Promise<Line[]> {
    const lines = () =>
      stack
        .logs()
        .map((line) => JSON.parse(line) as Line)
        .filter((line) => line.audit === true)
    for (let i = 0; i < 250 && lines().length < count; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    // A moment more: a line that should not be there would arrive now.
    if (stack.target === 'workerd') await new Promise((resolve) => setTimeout(resolve, 200))
    return lines()
  }

  /** Logs `user` in, keeping the authorization code, state and every cookie on the way. */
  async function login(
    jar: CookieJar,
    {
      user = 'alice',
      query = {},
      code,
    }: { user?: string; query?: Record<string, string>; code?: string } = {}
  ): Promise<Session> {
    const start = await jar.get(`/bff/login?${new URLSearchParams({ returnTo: '/', ...query })}`)
    expect(start.status).toBe(302)
    keepCookies(jar)
    const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
      login: user,
      password: 'pass',
      code,
    })
    const back = redirectLocation(atIdp)!
    keep('authorization code', back.searchParams.get('code') ?? undefined)
    keep('state', back.searchParams.get('state') ?? undefined)
    keepCookies(jar)
    const callback = await jar.get(`${stack.url}${back.pathname}${back.search}`)
    expect(callback.status).toBe(302)
    keepCookies(jar)
    return keepSession(jar)
  }

  function keepCookies(jar: CookieJar) {
    for (const url of [stack.url, stack.idp.issuer]) {
      for (const [name, value] of Object.entries(jar.cookies(url))) keep(`cookie ${name}`, value)
    }
  }

  async function keepSession(jar: CookieJar): Promise<Session> {
    const session = (await stack.sessionOf(jar))!
    expect(session).not.toBeNull()
    keep('session id', session.id)
    keep('access token', session.accessToken)
    keep('refresh token', session.refreshToken)
    keep('id token', session.idToken)
    return session
  }

  /** The BFF's view of the user: its subject hash, IdP and session hash. */
  const who = async (session: Session) => ({
    sub: await subjectHash(session.sub),
    idp: IDP,
    session: await sessionHash(session.id),
  })

  it('writes one line per security event, in order, with hashes, IP, route and a code', async () => {
    const before = (await trail(0)).length
    const alice = stack.jar()

    // A callback with no login in progress: a failed login, no subject to name.
    const stray = await alice.get(`/bff/callback/${IDP}?state=forged&code=forged`)
    expect(stray.status).toBe(400)

    const first = await login(alice)
    // Without X-CSRF: refused before the session is even read.
    expect((await alice.get('/api/orders?id=7')).status).toBe(403)
    // A password login is not enough for /mfa/.
    expect((await alice.get('/mfa/x?y=1', { headers: CSRF })).status).toBe(401)
    // The route's policy decision point says no.
    expect((await alice.get('/pdp/x', { headers: CSRF })).status).toBe(403)
    // Step-up: the IdP asks for the one-time code, and a new session replaces the first.
    const stepped = await login(alice, { query: { acr: 'mfa' }, code: MFA_CODE })
    expect(stepped.claims.acr).toBe('mfa')
    expect((await alice.get('/mfa/x', { headers: CSRF })).status).toBe(200)

    // Bob logs out at the IdP: its back-channel call ends his session (before the BFF's clock
    // moves on: the logout token's `iat` is the IdP's real time).
    const bob = stack.jar()
    const bobs = await login(bob, { user: 'bob' })
    await confirmIdpLogout(bob, `${stack.idp.issuer}/session/end`)
    expect(stack.idp.backchannel.success).toBeGreaterThanOrEqual(1)

    // An admin ends all of carol's sessions.
    const carol = stack.jar()
    const carols = await login(carol, { user: 'carol' })
    const revoke = await fetch(`${stack.url}/bff/admin/sessions?sub=carol`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    })
    expect(revoke.status).toBe(200)
    const { ended } = (await revoke.json()) as { ended: number }

    // A refresh that works writes nothing; one the IdP refuses (the token revoked there) ends
    // the session.
    stack.advance(120)
    expect((await alice.get('/api/x', { headers: CSRF })).status).toBe(200)
    const refreshed = await keepSession(alice)
    expect(refreshed.generation).toBe(stepped.generation + 1)
    await revokeAtIdp(refreshed.refreshToken!)
    stack.advance(120)
    const refused = await alice.get('/api/x', { headers: CSRF })
    expect(refused.status).toBe(401)
    expect(await refused.json()).toMatchObject({ error: 'session_expired' })

    // Logged in again, and out.
    const again = await login(alice)
    expect((await alice.post('/bff/logout', { headers: CSRF })).status).toBe(302)

    const expected: Line[] = [
      {
        event: 'login_failed',
        idp: IDP,
        route: `/bff/callback/${IDP}`,
        reason: 'no_login_in_progress',
      },
      { event: 'login', ...(await who(first)), route: `/bff/callback/${IDP}` },
      { event: 'csrf_rejected', route: '/api/', reason: 'missing_header' },
      {
        event: 'policy_denied',
        ...(await who(first)),
        route: '/mfa/',
        reason: 'step_up_required',
        check: 'acr',
      },
      {
        event: 'policy_denied',
        ...(await who(first)),
        route: '/pdp/',
        reason: 'forbidden',
        check: 'authorize',
      },
      { event: 'login', ...(await who(stepped)), route: `/bff/callback/${IDP}` },
      { event: 'step_up', ...(await who(stepped)), route: `/bff/callback/${IDP}`, acr: 'mfa' },
      { event: 'login', ...(await who(bobs)) },
      {
        event: 'backchannel_logout',
        sub: await subjectHash('bob'),
        idp: IDP,
        route: `/bff/backchannel/${IDP}`,
        reason: 'sid',
      },
      { event: 'login', ...(await who(carols)) },
      {
        event: 'admin_revoke',
        sub: await subjectHash('carol'),
        idp: IDP,
        route: '/bff/admin/sessions',
        reason: 'all',
        count: ended,
      },
      {
        event: 'refresh_failed',
        ...(await who(refreshed)),
        route: '/api/',
        reason: 'invalid_grant',
      },
      {
        event: 'session_expired',
        ...(await who(refreshed)),
        route: '/api/',
        reason: 'refresh_refused',
      },
      {
        event: 'policy_denied',
        ...(await who(refreshed)),
        route: '/api/',
        reason: 'session_expired',
        check: 'token',
      },
      { event: 'login', ...(await who(again)) },
      { event: 'logout', ...(await who(again)), route: '/bff/logout', reason: 'user' },
    ]
    const lines = (await trail(before + expected.length)).slice(before)
    expect(lines).toMatchObject(expected)
    expect(lines).toHaveLength(expected.length)
    for (const line of lines) {
      expect(
        Object.keys(line).filter((key) => !FIELDS.has(key)),
        JSON.stringify(line)
      ).toEqual([])
      // The client's address as the runtime saw it: the socket's on Node, CF-Connecting-IP on Workers.
      expect(line.ip, JSON.stringify(line)).toMatch(/^(127\.0\.0\.1|::1|::ffff:127\.0\.0\.1)$/)
      // The routes are bounded: never the path called, never its query.
      expect(String(line.route ?? '')).not.toMatch(/orders|\?|\/x$/)
    }
    // No line names anyone in the clear.
    const text = lines.map((line) => JSON.stringify(line)).join('\n')
    for (const raw of ['"alice"', '"bob"', '"carol"', first.id, stepped.id, again.id]) {
      expect(text).not.toContain(raw)
    }
  })

  it('logs no token, code, cookie value or secret anywhere after a whole session', async () => {
    const dave = stack.jar()
    await login(dave, { user: 'dave' })
    expect((await dave.get('/api/a', { headers: CSRF })).status).toBe(200)
    stack.advance(120)
    expect((await dave.get('/api/b', { headers: CSRF })).status).toBe(200)
    await keepSession(dave)
    const logout = await dave.post('/bff/logout', { headers: CSRF })
    expect(logout.status).toBe(302)
    // The access tokens the upstream was sent, as it received them.
    for (const request of stack.upstream.requests) {
      keep(
        'access token at upstream',
        /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
      )
    }
    await trail(1)
    if (stack.target === 'workerd') await new Promise((resolve) => setTimeout(resolve, 300))

    expect(secrets.size).toBeGreaterThan(10)
    const kinds = new Set(secrets.values())
    for (const kind of ['access token', 'refresh token', 'id token', 'authorization code']) {
      expect(kinds).toContain(kind)
    }
    const log = stack.logs().join('\n')
    expect(log).toContain('"audit":true')
    const found: string[] = []
    for (const [value, what] of secrets) {
      // A JWT's parts one by one too: its signature alone is as good as a token to no one, but
      // its payload names the user, and neither belongs in a log.
      const parts = value.split('.').filter((part) => part.length >= 16)
      for (const needle of new Set([value, ...parts])) {
        if (log.includes(needle)) found.push(`${what}: ${needle.slice(0, 12)}…`)
      }
    }
    expect(found).toEqual([])
  })

  it('keeps what an attacker sends out of the trail: IdP error text, paths, queries', async () => {
    const before = (await trail(0)).length
    const jar = stack.jar()
    // A login in progress, answered with an error whose text is the attacker's choice: only a
    // standard code, or `other`, is written; never the text or its description.
    const evil = 'evil_code_7f3a'
    const described = 'Injected description 9c1e'
    const states: string[] = []
    for (const error of [evil, 'access_denied']) {
      const start = await jar.get('/bff/login?returnTo=%2F')
      const state = redirectLocation(start)!.searchParams.get('state')!
      states.push(state)
      const query = new URLSearchParams({ state, error, error_description: described })
      query.set('iss', stack.idp.issuer)
      expect((await jar.get(`/bff/callback/${IDP}?${query}`)).status).toBe(400)
    }
    // A cross-site post to the back-channel, and a forged call with a secret-looking query.
    const crossSite = await fetch(`${stack.url}/bff/backchannel/${IDP}`, {
      method: 'POST',
      headers: {
        'sec-fetch-site': 'cross-site',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'logout_token=forged',
    })
    expect(crossSite.status).toBe(403)
    const query = 'access_token=query_secret_41d2'
    expect((await jar.get(`/api/some/where/else?${query}`)).status).toBe(403)

    const lines = (await trail(before + 4)).slice(before)
    expect(lines).toMatchObject([
      { event: 'login_failed', route: `/bff/callback/${IDP}`, reason: 'other' },
      { event: 'login_failed', route: `/bff/callback/${IDP}`, reason: 'access_denied' },
      { event: 'csrf_rejected', route: `/bff/backchannel/${IDP}`, reason: 'cross_site' },
      { event: 'csrf_rejected', route: '/api/', reason: 'missing_header' },
    ])
    expect(lines).toHaveLength(4)
    const log = stack.logs().join('\n')
    for (const needle of [evil, described, 'Injected', 'query_secret_41d2', ...states]) {
      expect(log).not.toContain(needle)
    }
    // The operational `request.failed` line names the path (docs/operations.md); the trail only
    // ever the route's prefix.
    expect(JSON.stringify(lines)).not.toContain('some/where')
  })

  async function revokeAtIdp(refreshToken: string) {
    const config = await client.discovery(
      new URL(stack.idp.issuer),
      DEMO_BFF_CLIENT.clientId,
      DEMO_BFF_CLIENT.clientSecret,
      undefined,
      { execute: [client.allowInsecureRequests] }
    )
    await client.tokenRevocation(config, refreshToken)
  }
})
