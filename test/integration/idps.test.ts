/**
 * Several IdPs behind one BFF (DESIGN "Several IdPs"): two real oidc-provider instances with
 * different claim shapes (Keycloak-like `realm_access.roles`, Entra-like `groups`), each at its
 * own callback and back-channel address. Logins with each, normalised claims, the mix-up attacks
 * of RFC 9700 4.4 refused with no session made and no code sent anywhere, back-channel logout and
 * the admin API by (idp, sub), one IdP away.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT, importJWK, type JWTPayload } from 'jose'
import * as client from 'openid-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Idp } from '../../src/demo/idp.ts'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { freePort } from '../helpers/upstream.ts'
import {
  ALL_STORES,
  CSRF,
  SERVER_STORE,
  describeStores,
  startStack,
  type Stack,
} from './harness.ts'

const ADMIN_TOKEN = 'an-admin-token-of-at-least-32-characters'
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }

/** corp says roles the Keycloak way, partner the Entra way; both map them to `roles`. */
function twoIdps(options: { partnerIssuer?: string; store?: string } = {}) {
  return startStack({
    store: (options.store ?? SERVER_STORE) as Stack['store'],
    env: { BFF_ADMIN_TOKEN: ADMIN_TOKEN },
    idps: {
      corp: { idpClaims: { realm_access: { roles: ['admin', 'staff'] } } },
      partner: { idpClaims: { groups: ['reader'] } },
    },
    configFile: ({ issuers, upstream }) => ({
      idps: {
        corp: {
          issuer: issuers.corp,
          clientId: DEMO_BFF_CLIENT.clientId,
          clientSecret: DEMO_BFF_CLIENT.clientSecret,
          label: 'Corp',
          claims: { roles: 'realm_access.roles' },
        },
        partner: {
          issuer: options.partnerIssuer ?? issuers.partner,
          clientId: DEMO_BFF_CLIENT.clientId,
          clientSecret: DEMO_BFF_CLIENT.clientSecret,
          clientAuth: 'client_secret_post',
          label: 'Partner',
          claims: { roles: 'groups' },
        },
      },
      routes: [
        { prefix: '/api/staff/', upstream: `${upstream}/staff/`, require: { roles: 'staff' } },
        { prefix: '/api/partners/', upstream: `${upstream}/partners/`, idps: ['partner'] },
        { prefix: '/api/', upstream: `${upstream}/` },
      ],
    }),
  })
}

/** Every call to an IdP's token endpoint, answered or refused. */
function countTokenCalls(idp: Idp): { calls: number } {
  const count = { calls: 0 }
  idp.provider.on('grant.success', () => void count.calls++)
  idp.provider.on('grant.error', () => void count.calls++)
  return count
}

interface UserBody {
  sub?: string
  idp?: string
  claims: Record<string, unknown>
}

async function user(jar: CookieJar) {
  const response = await jar.get('/bff/user', { headers: CSRF })
  return { status: response.status, body: (await response.json()) as UserBody }
}

async function introspect(idp: Idp, token: string): Promise<boolean> {
  const config = await client.discovery(
    new URL(idp.issuer),
    DEMO_BFF_CLIENT.clientId,
    DEMO_BFF_CLIENT.clientSecret,
    undefined,
    { execute: [client.allowInsecureRequests] }
  )
  return (await client.tokenIntrospection(config, token)).active
}

describe('two IdPs: login, claims, routes', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await twoIdps()
  })
  afterAll(() => stack.close())

  it('lists the IdPs for a chooser, in configured order', async () => {
    const response = await fetch(`${stack.url}/bff/idps`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual([
      { name: 'corp', label: 'Corp' },
      { name: 'partner', label: 'Partner' },
    ])
  })

  it('logs in at each IdP, at its own callback, with its claims normalised', async () => {
    const corp = stack.jar()
    const corpLogin = await stack.login(corp, { idp: 'corp' })
    expect(corpLogin.status).toBe(302)
    const corpUser = await user(corp)
    expect(corpUser.body).toMatchObject({ sub: 'alice', idp: 'corp' })
    expect(corpUser.body.claims.roles).toEqual(['admin', 'staff'])

    const partner = stack.jar()
    const start = await partner.get('/bff/login?idp=partner')
    const authorize = new URL(redirectLocation(start)!)
    expect(authorize.origin).toBe(new URL(stack.idps.partner!.issuer).origin)
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${stack.baseUrl}/bff/callback/partner`)
    await stack.login(partner, { idp: 'partner' })
    const partnerUser = await user(partner)
    expect(partnerUser.body).toMatchObject({ sub: 'alice', idp: 'partner' })
    expect(partnerUser.body.claims.roles).toEqual(['reader'])

    // Without idp: the first.
    const fallback = await stack.jar().get('/bff/login')
    expect(new URL(redirectLocation(fallback)!).origin).toBe(
      new URL(stack.idps.corp!.issuer).origin
    )
  })

  it('sends each session its own IdP token upstream, and routes see the normalised claims', async () => {
    const corp = stack.jar()
    await stack.login(corp, { idp: 'corp', user: 'carol' })
    const partner = stack.jar()
    await stack.login(partner, { idp: 'partner', user: 'carol' })

    expect((await corp.get('/api/staff/x', { headers: CSRF })).status).toBe(200)
    const corpToken = stack.upstream.requests.at(-1)!.headers.authorization!.slice(7)
    expect(await introspect(stack.idps.corp!, corpToken)).toBe(true)
    expect(await introspect(stack.idps.partner!, corpToken)).toBe(false)
    // partner's roles (groups) lack staff; corp's session is not partner's.
    expect((await partner.get('/api/staff/x', { headers: CSRF })).status).toBe(403)
    expect((await corp.get('/api/partners/x', { headers: CSRF })).status).toBe(403)
    expect((await partner.get('/api/partners/x', { headers: CSRF })).status).toBe(200)
    const partnerToken = stack.upstream.requests.at(-1)!.headers.authorization!.slice(7)
    expect(await introspect(stack.idps.partner!, partnerToken)).toBe(true)
  })

  it('refuses an unknown or repeated idp with 400 unknown_idp and sends nobody anywhere', async () => {
    for (const query of ['idp=nope', 'idp=corp&idp=partner', 'idp=']) {
      const response = await stack.jar().get(`/bff/login?${query}`)
      expect(response.status).toBe(400)
      expect(await response.json()).toMatchObject({ error: 'unknown_idp' })
    }
  })

  it('refreshes and logs out at the session own IdP', async () => {
    const partner = stack.jar()
    await stack.login(partner, { idp: 'partner', user: 'dave' })
    stack.idps.corp!.resetCounters()
    stack.idps.partner!.resetCounters()
    stack.advance(45)
    expect((await partner.get('/api/x', { headers: CSRF })).status).toBe(200)
    expect(stack.idps.partner!.grants.refresh).toBe(1)
    expect(stack.idps.corp!.grants.refresh).toBe(0)
    const logout = await partner.post('/bff/logout', { headers: CSRF })
    expect(new URL(redirectLocation(logout)!).origin).toBe(
      new URL(stack.idps.partner!.issuer).origin
    )
  })

  it('without a session, logs out at the IdP ?idp= names, nowhere without a name, 400 for a wrong one', async () => {
    const partnerOrigin = new URL(stack.idps.partner!.issuer).origin
    // The session ended on its own (or elsewhere); the login at partner may still be alive.
    const named = await stack.jar().post('/bff/logout?idp=partner', { headers: CSRF })
    expect(named.status).toBe(302)
    expect(new URL(redirectLocation(named)!).origin).toBe(partnerOrigin)
    const viaLink = await stack.jar().get('/bff/logout?idp=corp')
    expect(new URL(redirectLocation(viaLink)!).origin).toBe(new URL(stack.idps.corp!.issuer).origin)
    // Two IdPs and no name: no IdP can be told, the browser goes home.
    const unnamed = new URL(
      redirectLocation(await stack.jar().post('/bff/logout', { headers: CSRF }))!
    )
    expect(unnamed.pathname).toBe('/')
    expect([partnerOrigin, new URL(stack.idps.corp!.issuer).origin]).not.toContain(unnamed.origin)
    for (const query of ['idp=nope', 'idp=corp&idp=partner', 'idp=']) {
      const wrong = await stack.jar().post(`/bff/logout?${query}`, { headers: CSRF })
      expect(wrong.status).toBe(400)
      expect(await wrong.json()).toMatchObject({ error: 'unknown_idp' })
    }
    // With a session, its own IdP, whatever the name says.
    const corpUser = stack.jar()
    await stack.login(corpUser, { idp: 'corp', user: 'erin' })
    const own = await corpUser.post('/bff/logout?idp=partner', { headers: CSRF })
    expect(new URL(redirectLocation(own)!).origin).toBe(new URL(stack.idps.corp!.issuer).origin)
  })

  it('a silent login and a logout without a session go to the IdP this browser last logged in with', async () => {
    const partnerOrigin = new URL(stack.idps.partner!.issuer).origin
    const corpOrigin = new URL(stack.idps.corp!.issuer).origin
    const silent = (jar: CookieJar) =>
      jar.get('/bff/login?prompt=none&returnTo=/').then((r) => new URL(redirectLocation(r)!))
    const jar = stack.jar()
    // No login yet in this browser: the first IdP, as before.
    expect((await silent(jar)).origin).toBe(corpOrigin)
    await stack.login(jar, { idp: 'partner', user: 'gina' })
    const remembered = Object.entries(jar.cookies(stack.url)).find(([name]) =>
      name.endsWith('-idp')
    )
    expect(remembered?.[1]).toBe('partner')
    expect(jar.stored(stack.url).find((c) => c.name.endsWith('-idp'))).toMatchObject({
      httpOnly: true,
      sameSite: 'Lax',
    })
    expect((await silent(jar)).origin).toBe(partnerOrigin)
    // An interactive login without a name still goes to the first IdP (the SPA offers a choice).
    const interactive = await jar.get('/bff/login?returnTo=/')
    expect(new URL(redirectLocation(interactive)!).origin).toBe(corpOrigin)
    // The session is gone (expired, ended elsewhere): the logout still ends partner's login.
    await jar.post('/bff/logout', { headers: CSRF })
    const again = await jar.post('/bff/logout', { headers: CSRF })
    expect(new URL(redirectLocation(again)!).origin).toBe(partnerOrigin)
    // A name no IdP has (an old config, a hand-made cookie) is ignored.
    const forged = stack.jar()
    forged.setCookie(stack.url, `${remembered![0]}=nope; Path=/`)
    expect((await silent(forged)).origin).toBe(corpOrigin)
  })

  it('serves no single-IdP callback or back-channel address when IdPs are named', async () => {
    expect((await stack.jar().get('/bff/callback?state=x&code=y')).status).toBe(404)
    expect((await stack.jar().get('/bff/callback/nope?state=x&code=y')).status).toBe(404)
  })
})

describe('mix-up attacks (RFC 9700 4.4): refused, no session, no code sent', () => {
  let stack: Stack
  let corpCalls: { calls: number }
  let partnerCalls: { calls: number }
  beforeAll(async () => {
    stack = await twoIdps()
    corpCalls = countTokenCalls(stack.idps.corp!)
    partnerCalls = countTokenCalls(stack.idps.partner!)
  })
  afterAll(() => stack.close())

  /** Starts a login at `started`, then has the user authenticate at `at` with the same state. */
  async function crossed(started: string, at: string) {
    const jar = stack.jar()
    const start = await jar.get(`/bff/login?idp=${started}`)
    const request = new URL(redirectLocation(start)!)
    // The attacker's IdP sends the browser to the honest one with the BFF's state, as the
    // honest IdP's own client: the honest IdP answers at its own callback address.
    const honest = new URL(request.pathname + request.search, stack.idps[at]!.issuer)
    honest.searchParams.set('redirect_uri', `${stack.baseUrl}/bff/callback/${at}`)
    const atIdp = await loginAtIdp(jar, honest, { login: 'eve', password: 'pass' })
    const back = new URL(redirectLocation(atIdp)!)
    expect(back.pathname).toBe(`/bff/callback/${at}`)
    return { jar, back }
  }

  it('refuses a transaction started for another IdP, at either callback', async () => {
    for (const [started, at] of [
      ['partner', 'corp'],
      ['corp', 'partner'],
    ] as const) {
      const { jar, back } = await crossed(started, at)
      corpCalls.calls = partnerCalls.calls = 0
      const response = await jar.get(`${stack.url}${back.pathname}${back.search}`)
      expect(response.status).toBe(400)
      expect(await response.json()).toMatchObject({ error: 'invalid_callback' })
      expect((await user(jar)).status).toBe(401)
      // The code went to no token endpoint: neither the IdP that issued it nor the other.
      expect([corpCalls.calls, partnerCalls.calls]).toEqual([0, 0])
    }
  })

  it('refuses the code at the other IdP callback address, too', async () => {
    // The response of a corp login replayed at partner's address, with partner's transaction.
    const { jar, back } = await crossed('corp', 'corp')
    corpCalls.calls = partnerCalls.calls = 0
    const response = await jar.get(`${stack.url}/bff/callback/partner${back.search}`)
    expect(response.status).toBe(400)
    expect((await user(jar)).status).toBe(401)
    expect([corpCalls.calls, partnerCalls.calls]).toEqual([0, 0])
  })

  it('refuses an iss that is not the IdP of the callback, and a missing one', async () => {
    for (const iss of [stack.idps.partner!.issuer, undefined]) {
      const jar = stack.jar()
      const start = await jar.get('/bff/login?idp=corp')
      const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
        login: 'eve',
        password: 'pass',
      })
      const back = new URL(redirectLocation(atIdp)!)
      expect(back.searchParams.get('iss')).toBe(stack.idps.corp!.issuer)
      if (iss) back.searchParams.set('iss', iss)
      else back.searchParams.delete('iss')
      corpCalls.calls = partnerCalls.calls = 0
      const response = await jar.get(`${stack.url}${back.pathname}${back.search}`)
      expect(response.status).toBe(400)
      expect((await user(jar)).status).toBe(401)
      expect([corpCalls.calls, partnerCalls.calls]).toEqual([0, 0])
    }
  })
})

/** A logout token signed with `idp`'s own key, about `claims`. */
async function logoutToken(idp: Idp, claims: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({
    iss: idp.issuer,
    aud: DEMO_BFF_CLIENT.clientId,
    iat: now,
    exp: now + 120,
    jti: randomUUID(),
    events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    ...claims,
  } as JWTPayload)
    .setProtectedHeader({ alg: 'RS256', kid: idp.signingKey.kid, typ: 'logout+jwt' })
    .sign(await importJWK(idp.signingKey, 'RS256'))
}

describeStores(ALL_STORES, 'the user is the pair (idp, sub), with the %s store', (store) => {
  let stack: Stack
  beforeAll(async () => {
    stack = await twoIdps({ store })
  })
  afterAll(() => stack.close())

  const post = (name: string, token: string) =>
    fetch(`${stack.url}/bff/backchannel/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ logout_token: token }).toString(),
    })

  it('back-channel: a token at the other IdP address is 400; at its own it ends only its IdP sessions', async () => {
    const corp = stack.jar()
    await stack.login(corp, { idp: 'corp', user: 'frank' })
    const partner = stack.jar()
    await stack.login(partner, { idp: 'partner', user: 'frank' })

    const partnerToken = await logoutToken(stack.idps.partner!, { sub: 'frank' })
    const refused = await post('corp', partnerToken)
    expect(refused.status).toBe(400)
    expect(await refused.json()).toMatchObject({ error: 'invalid_logout_token' })
    expect((await user(corp)).status).toBe(200)
    expect((await user(partner)).status).toBe(200)

    expect((await post('partner', partnerToken)).status).toBe(200)
    expect((await user(partner)).status).toBe(401)
    // The same sub at corp is another user.
    expect((await user(corp)).status).toBe(200)
  })

  it('back-channel by sid ends only that IdP session with the sid', async () => {
    const corp = stack.jar()
    await stack.login(corp, { idp: 'corp', user: 'gina' })
    const partner = stack.jar()
    await stack.login(partner, { idp: 'partner', user: 'gina' })
    const corpSid = (await stack.sessionOf(corp))!.sid
    // partner names corp's sid: it is partner's to end only sessions of its own.
    const forged = await logoutToken(stack.idps.partner!, { sid: corpSid })
    expect((await post('partner', forged)).status).toBe(200)
    expect((await user(corp)).status).toBe(200)
    expect((await post('corp', await logoutToken(stack.idps.corp!, { sid: corpSid }))).status).toBe(
      200
    )
    expect((await user(corp)).status).toBe(401)
    expect((await user(partner)).status).toBe(200)
  })

  it('admin API: idp is required with several, and ends only that IdP sessions', async () => {
    const corp = stack.jar()
    await stack.login(corp, { idp: 'corp', user: 'hank' })
    const partner = stack.jar()
    await stack.login(partner, { idp: 'partner', user: 'hank' })
    const missing = await fetch(`${stack.url}/bff/admin/sessions?sub=hank`, {
      method: 'DELETE',
      headers: admin,
    })
    expect(missing.status).toBe(400)
    expect(await missing.json()).toMatchObject({ error: 'invalid_request' })
    const unknown = await fetch(`${stack.url}/bff/admin/sessions?sub=hank&idp=nope`, {
      headers: admin,
    })
    expect(unknown.status).toBe(400)
    expect(await unknown.json()).toMatchObject({ error: 'unknown_idp' })

    if (store !== 'cookie') {
      const listed = await fetch(`${stack.url}/bff/admin/sessions?sub=hank&idp=corp`, {
        headers: admin,
      })
      const body = (await listed.json()) as { sessions: Array<{ idp: string }> }
      expect(body.sessions.map((s) => s.idp)).toEqual(['corp'])
    }
    const ended = await fetch(`${stack.url}/bff/admin/sessions?sub=hank&idp=partner`, {
      method: 'DELETE',
      headers: admin,
    })
    expect(ended.status).toBe(200)
    expect((await user(partner)).status).toBe(401)
    expect((await user(corp)).status).toBe(200)
  })
})

describe('one IdP away', () => {
  let stack: Stack
  beforeAll(async () => {
    // partner's issuer answers nothing: a port nobody listens on.
    stack = await twoIdps({ partnerIssuer: `http://127.0.0.1:${await freePort()}` })
  })
  afterAll(() => stack.close())

  it('fails only its own logins, with 503 idp_unavailable, and health says which', async () => {
    const refused = await stack.jar().get('/bff/login?idp=partner')
    expect(refused.status).toBe(503)
    expect(await refused.json()).toMatchObject({ error: 'idp_unavailable' })

    const corp = stack.jar()
    await stack.login(corp, { idp: 'corp' })
    expect((await corp.get('/api/x', { headers: CSRF })).status).toBe(200)

    const health = await fetch(`${stack.url}/bff/health`)
    expect(health.status).toBe(200)
    const body = (await health.json()) as { idps: Array<{ name: string; status: string }> }
    expect(body).toMatchObject({ status: 'degraded', idp: 'degraded' })
    expect(
      body.idps.map((one: { name: string; status: string }) => [one.name, one.status])
    ).toEqual([
      ['corp', 'ok'],
      ['partner', 'unreachable'],
    ])
  })
})

describe('one IdP going away after its users logged in', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await twoIdps()
  })
  afterAll(() => stack.close())

  it("fails only its own sessions' refreshes (503, session kept); the other IdP's go on", async () => {
    const corp = stack.jar()
    await stack.login(corp, { idp: 'corp', user: 'ivan' })
    const partner = stack.jar()
    await stack.login(partner, { idp: 'partner', user: 'ivan' })
    const partnerIdp = stack.idps.partner!
    await partnerIdp.stop()
    // Stopped once; the stack's close must not stop it again.
    partnerIdp.stop = async () => {}
    // Health notices, although the document was read before the IdP went.
    const health = await fetch(`${stack.url}/bff/health`)
    expect(health.status).toBe(200)
    const body = (await health.json()) as { status: string; idps: Array<{ status: string }> }
    expect(body.status).toBe('degraded')
    expect(body.idps.map((one) => one.status)).toEqual(['ok', 'unreachable'])
    // Past the access tokens' 60 s: every call needs a refresh.
    stack.advance(90)
    const refused = await partner.get('/api/x', { headers: CSRF })
    expect(refused.status).toBe(503)
    expect(await refused.json()).toMatchObject({ error: 'idp_unavailable' })
    expect((await corp.get('/api/x', { headers: CSRF })).status).toBe(200)
    expect(stack.idps.corp!.grants.refresh).toBe(1)
    // The partner session is kept for when its IdP is back.
    expect(await stack.sessionOf(partner)).not.toBeNull()
  })
})
