/**
 * OIDC Back-Channel Logout 1.0: real logout tokens from the IdP end sessions in every store; forged,
 * replayed, expired, wrong-audience and nonce-carrying tokens are refused and change nothing.
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto'
import { SignJWT, importJWK, type JWTPayload } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { confirmIdpLogout, loginAtIdp } from '../helpers/idp-login.ts'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import {
  ALL_STORES,
  CSRF,
  SERVER_STORE,
  describeStores,
  startStack,
  type Stack,
} from './harness.ts'

const EVENT = 'http://schemas.openid.net/event/backchannel-logout'

async function isLoggedIn(jar: CookieJar): Promise<boolean> {
  const response = await jar.get('/bff/user', { headers: CSRF })
  return response.status === 200
}

/** A logout token valid in every respect except what `claims`/`header` override (undefined removes). */
async function mint(
  stack: Stack,
  claims: Record<string, unknown>,
  options: { header?: Record<string, unknown>; key?: JsonWebKey } = {}
): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const payload: Record<string, unknown> = {
    iss: stack.idp.issuer,
    aud: 'bff',
    iat: now,
    exp: now + 120,
    jti: randomUUID(),
    events: { [EVENT]: {} },
    ...claims,
  }
  for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name]
  const key = await importJWK(options.key ?? stack.idp.signingKey, 'RS256')
  return new SignJWT(payload as JWTPayload)
    .setProtectedHeader({
      alg: 'RS256',
      kid: stack.idp.signingKey.kid,
      typ: 'logout+jwt',
      ...options.header,
    })
    .sign(key)
}

function post(stack: Stack, token: string, contentType = 'application/x-www-form-urlencoded') {
  return fetch(`${stack.url}/bff/backchannel`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body: new URLSearchParams({ logout_token: token }).toString(),
  })
}

describeStores(ALL_STORES, 'with the %s store', (store) => {
  let stack: Stack
  let clockOffsetMs = 0
  beforeAll(async () => {
    stack = await startStack({ store })
  })
  afterAll(() => stack.close())

  it('ends the session when the user logs out at the IdP (a real logout token)', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'frank' })
    const bystander = stack.jar()
    await stack.login(bystander, { user: 'grace' })
    stack.idp.resetCounters()
    await confirmIdpLogout(jar, `${stack.idp.issuer}/session/end`)
    expect(stack.idp.backchannel).toEqual({ success: 1, error: 0 })
    expect(await isLoggedIn(jar)).toBe(false)
    expect(await isLoggedIn(bystander)).toBe(true)
  })

  it('ends every session of a subject for a sub-only token, and nobody else', async () => {
    const [a, b, other] = [stack.jar(), stack.jar(), stack.jar()]
    await stack.login(a, { user: 'heidi' })
    await stack.login(b, { user: 'heidi' })
    await stack.login(other, { user: 'ivan' })
    const response = await post(stack, await mint(stack, { sub: 'heidi' }))
    expect(response.status).toBe(200)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(await isLoggedIn(a)).toBe(false)
    expect(await isLoggedIn(b)).toBe(false)
    expect(await isLoggedIn(other)).toBe(true)
  })

  it('keeps a login that finishes right after a sub-only logout, in the same second', async () => {
    const old = stack.jar()
    await stack.login(old, { user: 'judy' })
    // The fresh login up to the IdP's redirect back, so only the callback remains.
    const fresh = stack.jar()
    const start = await fresh.get('/bff/login')
    const atIdp = await loginAtIdp(fresh, redirectLocation(start)!, {
      login: 'judy',
      password: 'pass',
    })
    const callback = redirectLocation(atIdp)!
    const token = await mint(stack, { sub: 'judy' })
    // Move the BFF's clock to just past a whole second, so logout and login most likely share it.
    // (Only this test moves this stack's clock.)
    const shift = (1050 - ((Date.now() + clockOffsetMs) % 1000)) % 1000
    clockOffsetMs += shift
    stack.advance(shift / 1000)
    expect((await post(stack, token)).status).toBe(200)
    const done = await fresh.get(`${stack.url}${callback.pathname}${callback.search}`)
    expect(done.status).toBe(302)
    expect(await isLoggedIn(old)).toBe(false)
    expect(await isLoggedIn(fresh)).toBe(true)
  })
})

describe('refused logout tokens change nothing', () => {
  let stack: Stack
  let jar: CookieJar
  let sid: string
  beforeAll(async () => {
    stack = await startStack({ store: SERVER_STORE })
    jar = stack.jar()
    await stack.login(jar, { user: 'judy' })
    sid = (await stack.sessionOf(jar))!.sid
  })
  afterAll(() => stack.close())

  const now = () => Math.floor(Date.now() / 1000)
  const otherKey = () =>
    generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' })

  const cases: Array<[string, () => Promise<string>]> = [
    ['signed with another key (same kid)', () => mint(stack, { sid }, { key: otherKey() })],
    [
      'alg none',
      async () =>
        unsigned({
          iss: stack.idp.issuer,
          aud: 'bff',
          iat: now(),
          jti: randomUUID(),
          sid,
          events: { [EVENT]: {} },
        }),
    ],
    ['from another issuer', () => mint(stack, { sid, iss: 'https://evil.example' })],
    ['for another audience', () => mint(stack, { sid, aud: 'someone-else' })],
    ['issued long ago', () => mint(stack, { sid, iat: now() - 3600, exp: now() + 60 })],
    ['expired', () => mint(stack, { sid, iat: now() - 200, exp: now() - 100 })],
    ['issued in the future', () => mint(stack, { sid, iat: now() + 600, exp: now() + 900 })],
    ['carrying a nonce', () => mint(stack, { sid, nonce: 'n-0S6_WzA2Mj' })],
    ['without the logout event', () => mint(stack, { sid, events: undefined })],
    ['with another event', () => mint(stack, { sid, events: { 'https://example/other': {} } })],
    ['without sid or sub', () => mint(stack, {})],
    ['without jti', () => mint(stack, { sid, jti: undefined })],
    ['that is not a JWT', async () => 'not.a.jwt'],
  ]

  it.each(cases)('refuses a token %s with 400', async (_name, make) => {
    const response = await post(stack, await make())
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ error: expect.any(String) })
    expect(await isLoggedIn(jar)).toBe(true)
  })

  it('refuses a body that is not a form, and a missing token', async () => {
    expect((await post(stack, await mint(stack, { sid }), 'application/json')).status).toBe(400)
    const empty = await fetch(`${stack.url}/bff/backchannel`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: '',
    })
    expect(empty.status).toBe(400)
    expect(await isLoggedIn(jar)).toBe(true)
  })

  it('refuses a body over 64 KB, or of unknown length, without reading it', async () => {
    // Anyone can post here. A body announced too large is refused by its Content-Length...
    const announced = await fetch(`${stack.url}/bff/backchannel`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `logout_token=${'a'.repeat(65 * 1024)}`,
    })
    expect(announced.status).toBe(413)
    expect(await announced.json()).toMatchObject({ error: 'payload_too_large' })
    // ...and one without a length (chunked) is refused rather than read to an unknown end.
    let chunks = 0
    const unannounced = new ReadableStream<Uint8Array>({
      pull: (controller) => {
        if (++chunks > 512) controller.close()
        else controller.enqueue(new Uint8Array(16 * 1024).fill(97))
      },
    })
    const streamed = await fetch(`${stack.url}/bff/backchannel`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: unannounced,
      duplex: 'half',
    } as RequestInit)
    expect(streamed.status).toBe(411)
    expect(await streamed.json()).toMatchObject({ error: 'invalid_request' })
    expect(await isLoggedIn(jar)).toBe(true)
  })

  it('accepts a valid token once and refuses its replay', async () => {
    const victim = stack.jar()
    await stack.login(victim, { user: 'ken' })
    const token = await mint(stack, { sid: (await stack.sessionOf(victim))!.sid })
    expect((await post(stack, token)).status).toBe(200)
    expect(await isLoggedIn(victim)).toBe(false)

    // The same user logs in again; replaying the old token must not end the new session.
    await stack.login(victim, { user: 'ken' })
    const replay = await post(stack, token)
    expect(replay.status).toBe(400)
    expect(await isLoggedIn(victim)).toBe(true)
  })
})

function unsigned(payload: Record<string, unknown>): string {
  const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${encode({ alg: 'none', typ: 'logout+jwt' })}.${encode(payload)}.`
}
