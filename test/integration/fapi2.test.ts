/**
 * `profile: "fapi2"` (BFF_PROFILE) against oidc-provider run as a FAPI 2.0 IdP: PAR required,
 * DPoP-bound tokens required of the client with nonces on, private_key_jwt with FAPI's algorithms,
 * its FAPI 2.0 profile on. Login, refresh and logout through a front that records every call; the
 * browser sees only `client_id` and `request_uri`; the code is bound to the session's key; a
 * response without `iss` and a code redeemed with another key are refused; an IdP without PAR is
 * reported unavailable, never used with less.
 */
import { generateKeyPairSync } from 'node:crypto'
import * as jose from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { dpopThumbprint, newDpopJwk } from '../../src/core/oidc/dpop.ts'
import type { LoginTransactionCookie } from '../../src/core/routes/login.ts'
import { createSealer } from '../../src/core/session/seal.ts'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import { startIdpFront, type FrontRequest, type IdpFront } from '../helpers/idp-front.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { introspectAsApi } from '../helpers/introspect.ts'
import { loginRefreshLogout } from './flows.ts'
import { startStack, TARGET, type Stack, type StackOptions } from './harness.ts'

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const EC_JWK = { ...(ec.privateKey.export({ format: 'jwk' }) as JsonWebKey), kid: 'fapi-1' }
const EC_PUBLIC = { ...(ec.publicKey.export({ format: 'jwk' }) as JsonWebKey), kid: 'fapi-1' }

/** The BFF's client at a FAPI 2.0 IdP: private_key_jwt, DPoP-bound access tokens. */
const FAPI_CLIENT = {
  token_endpoint_auth_method: 'private_key_jwt',
  client_secret: undefined,
  jwks: { keys: [{ ...EC_PUBLIC, use: 'sig' }] },
  dpop_bound_access_tokens: true,
}
/** The env IdP in profile fapi2: a key, no secret; PAR, DPoP and private_key_jwt by the profile. */
const FAPI_ENV = {
  BFF_PROFILE: 'fapi2',
  BFF_CLIENT_KEY: JSON.stringify(EC_JWK),
  BFF_CLIENT_SECRET: undefined,
}

const form = (req: FrontRequest) => new URLSearchParams(req.body)
const callsTo = (front: IdpFront, path: string) =>
  front.seen.filter((req) => req.method === 'POST' && req.url.split('?')[0] === path)
const jwtPart = (jwt: string, i: 0 | 1) =>
  JSON.parse(Buffer.from(jwt.split('.')[i]!, 'base64url').toString()) as Record<string, unknown>

async function fapiStack(options: StackOptions = {}) {
  const front = await startIdpFront()
  const stack = await startStack({
    front,
    idp: { par: 'required', dpopNonce: true, fapi: true },
    clientMetadata: FAPI_CLIENT,
    ...options,
    env: { ...FAPI_ENV, ...options.env },
  })
  return { stack, front }
}

/** The IdP's redirect back to the BFF after logging in at `authorize` (not yet followed). */
async function backFromIdp(jar: CookieJar, authorize: URL): Promise<URL> {
  const atIdp = await loginAtIdp(jar, authorize, { login: 'alice', password: 'pass' })
  return new URL(redirectLocation(atIdp)!)
}

describe(`profile fapi2 against a FAPI 2.0 IdP on ${TARGET}`, () => {
  let stack: Stack
  let front: IdpFront
  beforeAll(async () => ({ stack, front } = await fapiStack()))
  afterAll(async () => {
    await stack.close()
    await front.close()
  })

  it('pushes the request (assertion, proof), the browser sees only client_id and request_uri, and the session is DPoP-bound', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login?returnTo=/')
    expect(start.status).toBe(302)
    const authorize = redirectLocation(start)!
    expect([...authorize.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri'])
    const pushed = callsTo(front, '/request').at(-1)!
    // No secret anywhere: a client assertion signed ES256, for the issuer, short-lived.
    expect(pushed.headers.authorization).toBeUndefined()
    const assertion = form(pushed).get('client_assertion')!
    expect(jwtPart(assertion, 0)).toMatchObject({ alg: 'ES256' })
    expect(jwtPart(assertion, 1)).toMatchObject({ iss: 'bff', sub: 'bff', aud: front.url })
    expect(form(pushed).get('code_challenge_method')).toBe('S256')
    // The push carried a DPoP proof: the code is bound to that key (RFC 9449 10.1).
    const proof = pushed.headers.dpop as string
    expect(jwtPart(proof, 0)).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256' })

    const back = await backFromIdp(jar, authorize)
    expect(back.searchParams.get('iss')).toBe(front.url)
    expect((await jar.get(`${stack.url}${back.pathname}${back.search}`)).status).toBe(302)
    const session = (await stack.sessionOf(jar))!
    expect(session.tokenType).toBe('DPoP')
    const jkt = await dpopThumbprint(session.dpopKey!)
    expect(await jose.calculateJwkThumbprint(jwtPart(proof, 0).jwk as jose.JWK)).toBe(jkt)
    expect(await introspectAsApi(stack.idp, session.accessToken)).toMatchObject({
      active: true,
      token_type: 'DPoP',
      cnf: { jkt },
    })
    // Every token call carried a proof of that key and an assertion.
    for (const call of callsTo(front, '/token')) {
      expect(call.headers.dpop).toBeDefined()
      expect(form(call).get('client_assertion')).not.toBeNull()
    }
  })

  it('refreshes with the same key and logs out (the refresh token revoked)', async () => {
    const { first, refreshed } = await loginRefreshLogout(stack)
    expect(refreshed.dpopKey).toEqual(first.dpopKey)
    expect(refreshed.tokenType).toBe('DPoP')
    expect((await introspectAsApi(stack.idp, refreshed.refreshToken!)).active).toBe(false)
  })

  it('refuses a login response without iss (mix-up defence): no session', async () => {
    const jar = stack.jar()
    const back = await backFromIdp(jar, redirectLocation(await jar.get('/bff/login?returnTo=/'))!)
    back.searchParams.delete('iss')
    const callback = await jar.get(`${stack.url}${back.pathname}${back.search}`)
    expect(callback.status).toBe(400)
    expect(await stack.sessionOf(jar)).toBeNull()
  })

  it('refuses a code redeemed with a key other than the one it is bound to (the attack fails)', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login?returnTo=/')
    const back = await backFromIdp(jar, redirectLocation(start)!)
    // The transaction swapped for one holding another key, as code injection with a key of the
    // attacker's own would be: the IdP refuses the code grant.
    const sealer = createSealer([stack.secret])
    const [name, sealed] = Object.entries(jar.cookies(stack.url)).find(([n]) =>
      n.startsWith('bff-tx.')
    )!
    const tx = (await sealer.unseal<LoginTransactionCookie>(sealed))!
    expect(tx.dpopKey).toBeDefined()
    const swapped = await sealer.seal({ ...tx, dpopKey: await newDpopJwk() }, 600)
    jar.setCookie(stack.url, `${name}=${swapped}; Path=/; HttpOnly; SameSite=Lax`)
    const callback = await jar.get(`${stack.url}${back.pathname}${back.search}`, {
      headers: { accept: 'application/json' },
    })
    expect(callback.status).toBeGreaterThanOrEqual(400)
    expect(await stack.sessionOf(jar)).toBeNull()
    expect(stack.idp.grants.authorizationCode).toBe(0)
  })
})

describe(`profile fapi2 with an IdP without PAR on ${TARGET}`, () => {
  let stack: Stack
  let front: IdpFront
  beforeAll(async () => ({ stack, front } = await fapiStack({ idp: { par: false, fapi: true } })))
  afterAll(async () => {
    await stack.close()
    await front.close()
  })

  it('reports the IdP unavailable, saying what it lacks, and never sends a login there', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login?returnTo=/', {
      headers: { accept: 'application/json' },
    })
    expect(start.status).toBe(503)
    expect(await start.json()).toMatchObject({ error: 'idp_unavailable' })
    expect(start.headers.get('location')).toBeNull()
    // Not PAR-less, not bearer: nothing but discovery reached the IdP.
    expect(front.seen.every((req) => req.url.startsWith('/.well-known/'))).toBe(true)
    const health = await fetch(`${stack.url}/bff/health`)
    expect(health.status).toBe(503)
    const body = (await health.json()) as { idps: Array<{ status: string; message: string }> }
    expect(body.idps[0]).toMatchObject({
      status: 'unreachable',
      message: expect.stringContaining(
        'cannot serve profile fapi2: no pushed_authorization_request_endpoint (PAR)'
      ),
    })
    await expect
      .poll(() => stack.logs().filter((l) => l.includes('cannot serve profile fapi2')).length)
      .toBeGreaterThan(0)
  })
})
