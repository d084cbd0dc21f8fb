/**
 * DPoP (RFC 9449) with `BFF_DPOP=true` against the real oidc-provider, its client requiring
 * DPoP-bound access tokens and its endpoints requiring nonces: login, refresh (the same key) and
 * logout, the tokens bound to the session's key (`cnf.jkt` by introspection), and a token copied
 * out of the session useless as a bearer token.
 */
import * as jose from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { dpopThumbprint } from '../../src/core/oidc/dpop.ts'
import { introspectAsApi } from '../helpers/introspect.ts'
import { startDpopUpstream, type DpopUpstream } from '../helpers/dpop-upstream.ts'
import { CSRF, SERVER_STORE, startStack, TARGET, type Stack } from './harness.ts'

const introspect = (stack: Stack, token: string) => introspectAsApi(stack.idp, token)

/** The stack's IdP as the config file names it, with dpop. */
const dpopIdp = (issuer: string, more: Record<string, unknown> = {}) => ({
  demo: {
    issuer,
    clientId: DEMO_BFF_CLIENT.clientId,
    clientSecret: '${TEST_IDP_SECRET}',
    dpop: true,
    ...more,
  },
})

// Every kind of store keeps the key: the cookie (sealed), the runtime's own, and Redis on Node.
const STORES =
  TARGET === 'node'
    ? (['cookie', SERVER_STORE, 'redis'] as const)
    : (['cookie', SERVER_STORE] as const)

describe.each(STORES)(`DPoP (BFF_DPOP=true) on ${TARGET}, %s store`, (store) => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      store,
      idp: { dpopNonce: true },
      clientMetadata: { dpop_bound_access_tokens: true },
      env: { BFF_DPOP: 'true' },
    })
  })
  afterAll(() => stack.close())

  it('binds the login and every refresh to the one key of the session; logout revokes', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
    const first = (await stack.sessionOf(jar))!
    expect(first.tokenType).toBe('DPoP')
    expect(first.dpopKey).toMatchObject({ kty: 'EC', crv: 'P-256' })
    // Sealed: the browser's cookies never show the private key, whatever the store.
    expect(Object.values(jar.cookies(stack.url)).join(';')).not.toContain(first.dpopKey!.d)
    const jkt = await dpopThumbprint(first.dpopKey!)
    const atLogin = await introspect(stack, first.accessToken)
    expect(atLogin).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt } })

    stack.idp.resetCounters()
    stack.advance(120)
    expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
    expect(stack.idp.grants.refresh).toBe(1)
    const refreshed = (await stack.sessionOf(jar))!
    expect(refreshed.accessToken).not.toBe(first.accessToken)
    expect(refreshed.dpopKey).toEqual(first.dpopKey)
    expect(await introspect(stack, refreshed.accessToken)).toMatchObject({
      active: true,
      cnf: { jkt },
    })

    const user = (await (await jar.get('/bff/user', { headers: CSRF })).json()) as {
      logoutUrl: string
    }
    expect((await jar.get(user.logoutUrl)).status).toBe(302)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
    expect((await introspect(stack, refreshed.refreshToken!)).active).toBe(false)
  })

  it('leaves a copied access token useless without the key (userinfo refuses it as bearer)', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    const session = (await stack.sessionOf(jar))!
    const userinfo = `${stack.idp.issuer}/me`
    const stolen = await fetch(userinfo, {
      headers: { authorization: `Bearer ${session.accessToken}` },
    })
    expect(stolen.status).toBe(401)
    const asDpop = await fetch(userinfo, {
      headers: { authorization: `DPoP ${session.accessToken}` },
    })
    expect(asDpop.status).toBe(400) // invalid_request: the DPoP scheme without a proof
  })
})

describe(`DPoP upstream calls on ${TARGET}`, () => {
  let stack: Stack
  let upstream: DpopUpstream
  let nonced: DpopUpstream
  let rolling: DpopUpstream
  beforeAll(async () => {
    upstream = await startDpopUpstream()
    nonced = await startDpopUpstream({ nonce: true })
    rolling = await startDpopUpstream({ nonce: true, nonceOnEveryAnswer: true })
    stack = await startStack({
      idp: { dpopNonce: true },
      clientMetadata: { dpop_bound_access_tokens: true },
      env: {
        BFF_DPOP: 'true',
        BFF_API: `/api/=${upstream.url}/,/nonced/=${nonced.url}/,/rolling/=${rolling.url}/`,
      },
    })
    for (const one of [upstream, nonced, rolling]) one.introspect = (t) => introspect(stack, t)
  })
  afterAll(async () => {
    await stack.close()
    await Promise.all([upstream, nonced, rolling].map((one) => one.close()))
  })

  it('sends Authorization: DPoP with a fresh proof the upstream verifies, each call its own', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    for (const path of ['/api/orders?page=2', '/api/orders?page=2', '/api/items/7']) {
      const res = await jar.get(path, { headers: CSRF })
      expect(res.status).toBe(200)
    }
    const post = await jar.post('/api/orders', {
      headers: { ...CSRF, 'content-type': 'application/json' },
      body: '{}',
    })
    expect(post.status).toBe(200)
    const calls = upstream.requests.slice(-4)
    expect(calls.map((call) => call.refused)).toEqual([undefined, undefined, undefined, undefined])
    expect(new Set(calls.map((call) => call.proof)).size).toBe(4)
  })

  it('refuses a replayed proof, and a proof or token taken elsewhere (the attack fails)', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    expect((await jar.get('/api/a', { headers: CSRF })).status).toBe(200)
    const { proof, token } = upstream.requests.at(-1)!
    const replayed = await fetch(`${upstream.url}/a`, {
      headers: { authorization: `DPoP ${token}`, dpop: proof! },
    })
    expect(replayed.status).toBe(401)
    expect(upstream.requests.at(-1)!.refused).toBe('jti')
    // The token alone, as bearer or with no proof: refused.
    const bearer = await fetch(`${upstream.url}/a`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(bearer.status).toBe(401)
    // A proof of the attacker's own key with the stolen token: the token is bound to another key.
    const attacker = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])
    const { upstreamProof } = await import('../../src/core/oidc/dpop.ts')
    const forged = await upstreamProof(
      { keyPair: attacker, publicJwk: await jose.exportJWK(attacker.publicKey) },
      'GET',
      new URL(`${upstream.url}/a`),
      token!
    )
    const stolen = await fetch(`${upstream.url}/a`, {
      headers: { authorization: `DPoP ${token}`, dpop: forged },
    })
    expect(stolen.status).toBe(401)
    expect(upstream.requests.at(-1)!.refused).toBe('cnf.jkt')
  })

  it('answers an upstream nonce challenge once, then sends the nonce up front', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    const before = nonced.requests.length
    expect((await jar.get('/nonced/x', { headers: CSRF })).status).toBe(200)
    const first = nonced.requests.slice(before)
    expect(first.map((call) => call.refused)).toEqual(['nonce', undefined])
    expect(first[1]!.nonce).toBeDefined()
    // Remembered for the origin: the next call needs no challenge.
    expect((await jar.get('/nonced/y', { headers: CSRF })).status).toBe(200)
    expect(nonced.requests.length).toBe(before + 3)
    // A new nonce: a small body of a declared length is read first and sent again with it.
    nonced.rotateNonce()
    const post = await jar.post('/nonced/z', {
      headers: { ...CSRF, 'content-type': 'application/json' },
      body: '{"order":7}',
    })
    expect(post.status).toBe(200)
    const again = nonced.requests.slice(before + 3)
    expect(again.map((call) => [call.method, call.refused, call.body])).toEqual([
      ['POST', 'nonce', '{"order":7}'],
      ['POST', undefined, '{"order":7}'],
    ])
    // So is a DELETE without a body (as fetch sends it: neither Content-Length nor chunked).
    nonced.rotateNonce()
    const gone = await jar.request('DELETE', '/nonced/z', { headers: CSRF })
    expect(gone.status).toBe(200)
    expect(nonced.requests.length).toBe(before + 7)
    // A streamed body (chunked) has gone out once: not sent twice, its 401 goes back, and the
    // nonce it brought is in the next call's proof.
    nonced.rotateNonce()
    const streamed = await jar.post('/nonced/z', {
      headers: CSRF,
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode('{"big":true}'))
          controller.close()
        },
      }),
    })
    expect(streamed.status).toBe(401)
    expect(nonced.requests.length).toBe(before + 8)
    expect((await jar.get('/nonced/z', { headers: CSRF })).status).toBe(200)
    expect(nonced.requests.length).toBe(before + 9)
  })

  it('uses a nonce the upstream handed out in a 200 answer on the next proof, unchallenged', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    const before = rolling.requests.length
    // The first call has no nonce yet: challenged once. Every answer then brings the next one.
    for (const path of ['/rolling/a', '/rolling/b', '/rolling/c']) {
      expect((await jar.get(path, { headers: CSRF })).status).toBe(200)
    }
    const calls = rolling.requests.slice(before)
    expect(calls.map((call) => call.refused)).toEqual(['nonce', undefined, undefined, undefined])
    // Each proof carried the nonce of the answer before it: all different.
    expect(new Set(calls.slice(1).map((call) => call.nonce)).size).toBe(3)
  })
})

describe(`DPoP resource and exchange grants on ${TARGET}`, () => {
  const ORDERS = 'https://orders.example'
  const LEDGER = 'urn:ledger'
  let stack: Stack
  let upstream: DpopUpstream
  beforeAll(async () => {
    upstream = await startDpopUpstream()
    stack = await startStack({
      idp: {
        dpopNonce: true,
        resourceServers: {
          [ORDERS]: { format: 'opaque', ttl: 600 },
          [LEDGER]: { format: 'opaque', scope: 'ledger:read', ttl: 600 },
        },
        extraScopes: ['ledger:read'],
      },
      clientMetadata: { dpop_bound_access_tokens: true },
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer }) => ({
        idps: dpopIdp(issuer, { scopes: 'openid profile email offline_access ledger:read' }),
        routes: [
          { prefix: '/orders/', upstream: `${upstream.url}/orders/`, resource: ORDERS },
          {
            prefix: '/ledger/',
            upstream: `${upstream.url}/ledger/`,
            token: 'exchange',
            resource: LEDGER,
            scopes: ['ledger:read'],
          },
        ],
      }),
    })
    upstream.introspect = (token) => introspect(stack, token)
  })
  afterAll(async () => {
    await stack.close()
    await upstream.close()
  })

  it('binds the resource and the exchanged tokens to the session key too', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    expect((await jar.get('/orders/1', { headers: CSRF })).status).toBe(200)
    expect(upstream.requests.at(-1)!.refused).toBeUndefined()
    const ledger = await jar.get('/ledger/1', { headers: CSRF })
    expect(upstream.requests.at(-1)!.refused).toBeUndefined()
    expect(ledger.status).toBe(200)
  })
})

describe(`DPoP client routes (client credentials) on ${TARGET}`, () => {
  let stack: Stack
  let upstream: DpopUpstream
  beforeAll(async () => {
    upstream = await startDpopUpstream({ nonce: true })
    stack = await startStack({
      store: SERVER_STORE,
      idp: { dpopNonce: true },
      clientMetadata: { dpop_bound_access_tokens: true },
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer }) => ({
        idps: dpopIdp(issuer),
        routes: [{ prefix: '/service/', upstream: `${upstream.url}/`, token: 'client' }],
      }),
    })
    upstream.introspect = (token) => introspect(stack, token)
  })
  afterAll(async () => {
    await stack.close()
    await upstream.close()
  })

  it("gets a token bound to the BFF's key with a proof, and proves that key upstream", async () => {
    stack.idp.resetCounters()
    // No session needed: the BFF's own token.
    for (const path of ['/service/a', '/service/b']) {
      expect((await fetch(`${stack.url}${path}`, { headers: CSRF })).status).toBe(200)
    }
    expect(stack.idp.grants.clientCredentials).toBe(1)
    const calls = upstream.requests.slice(-2)
    expect(calls.map((call) => call.refused)).toEqual([undefined, undefined])
    // The IdP bound it (its client requires DPoP-bound tokens): introspection says to which key,
    // and the upstream checked each proof's key against it.
    const info = await introspect(stack, calls[0]!.token!)
    expect(info).toMatchObject({
      active: true,
      token_type: 'DPoP',
      cnf: { jkt: expect.any(String) },
    })
    expect(calls[1]!.token).toBe(calls[0]!.token)
    expect(calls[1]!.proof).not.toBe(calls[0]!.proof)
    // The token without the key: useless.
    const bearer = await fetch(`${upstream.url}/a`, {
      headers: { authorization: `Bearer ${calls[0]!.token}` },
    })
    expect(bearer.status).toBe(401)
  })
})

describe('DPoP off (the default) with the same IdP', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ idp: { dpopNonce: true } })
  })
  afterAll(() => stack.close())

  it('keeps bearer tokens and no key in the session', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    const session = (await stack.sessionOf(jar))!
    expect(session.dpopKey).toBeUndefined()
    expect(session.tokenType).toBeUndefined()
    expect((await introspect(stack, session.accessToken)).token_type).toBe('Bearer')
  })
})
