/**
 * DPoP (RFC 9449) with `BFF_DPOP=true` against the real oidc-provider, its client requiring
 * DPoP-bound access tokens and its endpoints requiring nonces: login, refresh (the same key) and
 * logout, the tokens bound to the session's key (`cnf.jkt` by introspection), and a token copied
 * out of the session useless as a bearer token.
 */
import * as client from 'openid-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { apiClientMetadata, DEMO_API_CLIENT } from '../../src/demo/idp.ts'
import { dpopThumbprint } from '../../src/core/oidc/dpop.ts'
import { CSRF, startStack, TARGET, type Stack } from './harness.ts'

/** Introspection by the demo API's client: what the IdP says of `token`. */
async function introspect(stack: Stack, token: string) {
  await stack.idp.addClient(apiClientMetadata())
  const config = await client.discovery(
    new URL(stack.idp.issuer),
    DEMO_API_CLIENT.clientId,
    DEMO_API_CLIENT.clientSecret,
    undefined,
    { execute: [client.allowInsecureRequests] }
  )
  return client.tokenIntrospection(config, token)
}

describe(`DPoP (BFF_DPOP=true) on ${TARGET}`, () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
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
