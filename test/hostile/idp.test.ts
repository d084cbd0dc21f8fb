/**
 * A hostile identity provider: every lie an IdP (or whoever answers in its name) can tell in a login
 * ends in a 400 page and no session. The BFF runs on Node through startNode with BFF_ISSUER at our
 * own small provider (hostile-idp.ts), which lies in one chosen way per test.
 */
import { randomBytes } from 'node:crypto'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import { startNode, type NodeServer } from '../../src/adapters/node/server.ts'
import { captureLog, type CapturedLog } from '../helpers/capture-log.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { freePort } from '../helpers/upstream.ts'
import { halfHash, startHostileIdp, type HostileIdp, type Misbehaviour } from './hostile-idp.ts'

const HTML = { accept: 'text/html,application/xhtml+xml' }
const CSRF = { 'x-csrf': '1' }

let idp: HostileIdp
let bff: NodeServer
let logs: CapturedLog

async function startBff(): Promise<NodeServer> {
  const port = await freePort()
  return startNode(
    {
      PORT: String(port),
      BFF_ISSUER: idp.issuer,
      BFF_CLIENT_ID: idp.clientId,
      BFF_CLIENT_SECRET: idp.clientSecret,
      BFF_BASE_URL: `http://127.0.0.1:${port}`,
      BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
      BFF_SESSION_STORE: 'memory',
    },
    // The clock is read through Date.now at each call, so the rotation tests can move it.
    { serveStatic: false, deps: { log: logs.log, now: () => Date.now() } }
  )
}

beforeAll(async () => {
  idp = await startHostileIdp()
  logs = captureLog()
  bff = await startBff()
})
afterAll(async () => {
  await bff?.close()
  await idp?.close()
})
afterEach(() => {
  idp.behave()
  vi.restoreAllMocks()
})

/** Login through the IdP as a browser would; returns the callback's answer to a page navigation. */
async function login(server: NodeServer = bff): Promise<{ jar: CookieJar; callback: Response }> {
  const jar = createCookieJar({ baseUrl: server.url })
  const start = await jar.get('/bff/login?returnTo=/home', { headers: HTML })
  expect(start.status).toBe(302)
  const atIdp = await jar.follow(start)
  expect(atIdp.status).toBe(302)
  const back = redirectLocation(atIdp)!
  expect(back.origin).toBe(server.url)
  const callback = await jar.get(back, { headers: HTML })
  return { jar, callback }
}

function sessionCookieSet(jar: CookieJar): boolean {
  return jar.lastSetCookies.some((line) => /^(__Host-)?bff(\.\d+)?=[^;]+/.test(line))
}

async function expectRefused(server: NodeServer = bff) {
  const { jar, callback } = await login(server)
  expect(callback.status).toBe(400)
  expect(callback.headers.get('content-type')).toMatch(/^text\/html/)
  const page = await callback.text()
  expect(page).toMatch(/<h1>/)
  expect(page).not.toMatch(/eyJ/) // no JWT, no token material on the page
  expect(callback.headers.get('location')).toBeNull()
  expect(sessionCookieSet(jar)).toBe(false)
  expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
}

async function expectAccepted(server: NodeServer = bff) {
  const { jar, callback } = await login(server)
  expect(callback.status).toBe(302)
  expect(callback.headers.get('location')).toBe('/home')
  const user = await jar.get('/bff/user', { headers: CSRF })
  expect(user.status).toBe(200)
  expect(await user.json()).toMatchObject({ sub: idp.sub })
}

const now = () => Math.floor(Date.now() / 1000)
const withClaims =
  (change: Record<string, unknown>): Misbehaviour['claims'] =>
  (claims) => {
    const next = { ...claims, ...change }
    for (const [name, value] of Object.entries(change)) if (value === undefined) delete next[name]
    return next
  }

describe('a behaving provider', () => {
  it('logs in (the control case: the lies below are the only difference)', async () => {
    await expectAccepted()
  })
})

describe('an ID token that must be refused', () => {
  const cases: Array<[string, () => Misbehaviour]> = [
    ['signed with alg none', () => ({ signing: 'none' })],
    ['signed with a key the JWKS does not hold (same kid)', () => ({ signing: 'wrong-key' })],
    ['from another issuer', () => ({ claims: withClaims({ iss: 'https://evil.example' }) })],
    ['for another audience', () => ({ claims: withClaims({ aud: 'someone-else' }) })],
    [
      'for an extra audience without azp',
      () => ({ claims: withClaims({ aud: [idp.clientId, 'someone-else'] }) }),
    ],
    [
      'for an extra audience with azp naming another client',
      () => ({ claims: withClaims({ aud: [idp.clientId, 'other'], azp: 'other' }) }),
    ],
    ['expired', () => ({ claims: withClaims({ iat: now() - 900, exp: now() - 600 }) })],
    [
      'issued far in the future (iat)',
      () => ({ claims: withClaims({ iat: now() + 86_400, exp: now() + 90_000 }) }),
    ],
    ['with another nonce', () => ({ claims: withClaims({ nonce: 'not-the-login-nonce' }) })],
    ['without a nonce', () => ({ claims: withClaims({ nonce: undefined }) })],
    [
      'with an at_hash of another access token',
      () => ({ claims: withClaims({ at_hash: halfHash('another access token') }) }),
    ],
    [
      'with a c_hash of another code',
      () => ({ claims: withClaims({ c_hash: halfHash('another code') }) }),
    ],
  ]

  it.each(cases)('%s: 400 page, no session', async (_name, lie) => {
    idp.misbehave(lie())
    await expectRefused()
  })

  it('without kid while the JWKS holds several keys: 400 page, no session', async () => {
    const original = idp.keys.signing
    const second = await idp.newKey()
    idp.publish([original, second])
    // A BFF of its own, whose first JWKS copy already holds both keys.
    const own = await startBff()
    try {
      idp.misbehave({ signing: 'no-kid' })
      await expectRefused(own)
    } finally {
      idp.publish([original])
      await own.close()
    }
  })

  it('signed with alg none even when discovery lists none as supported', async () => {
    // Discovery is cached per process: a BFF of its own sees this provider's metadata from the start.
    idp.misbehave({
      signing: 'none',
      metadata: { id_token_signing_alg_values_supported: ['none', 'RS256'] },
    })
    const own = await startBff()
    try {
      await expectRefused(own)
    } finally {
      await own.close()
    }
  })
})

describe('an authorization or userinfo response that must be refused', () => {
  it('an iss parameter naming another issuer (mix-up): 400 page, no session', async () => {
    idp.misbehave({ responseIss: 'https://evil.example' })
    await expectRefused()
  })

  it('no iss parameter although discovery promises one: 400 page, no session', async () => {
    idp.misbehave({ responseIss: null })
    await expectRefused()
  })

  it('a userinfo sub that differs from the ID token sub: 400 page, no session', async () => {
    idp.misbehave({ userinfoSub: 'someone-else' })
    await expectRefused()
  })

  it('logs each refusal as a 400 without quoting the response', async () => {
    idp.misbehave({ claims: withClaims({ iss: 'https://evil.example' }) })
    const before = logs.lines.length
    await expectRefused()
    const refusal = logs.lines.slice(before).find((line) => line.includes('request.failed'))
    expect(JSON.parse(refusal!)).toMatchObject({ status: 400, path: '/bff/callback' })
    expect(refusal).not.toContain('evil.example')
  })
})

describe('key rotation at the provider', () => {
  // openid-client caches the JWKS and fetches it again for an unknown kid only once its copy is
  // 60 s old (a bound on how often tokens can make it call the IdP). Date.now is moved forward
  // rather than waited for: the BFF runs in this process and reads the clock through it. Each
  // test has a BFF of its own, so its JWKS copy is as old as the test says.
  let skewMs = 0
  let own: NodeServer
  const advance = (seconds: number) => {
    skewMs += seconds * 1000
  }
  beforeEach(async () => {
    skewMs = 0
    const realNow = Date.now.bind(Date)
    vi.spyOn(Date, 'now').mockImplementation(() => realNow() + skewMs)
    idp.publish([idp.keys.signing])
    own = await startBff()
  })
  afterEach(() => own.close())

  it('picks up a new kid without a restart when the key is published ahead of use', async () => {
    const before = idp.keys.signing
    await expectAccepted(own) // the BFF's first JWKS copy: [before]
    const next = await idp.newKey()
    idp.publish([before, next])
    advance(61)
    idp.signWith(next)
    await expectAccepted(own)
    idp.publish([next]) // the old key retired
    advance(301) // past the 5-minute life of any JWKS copy
    await expectAccepted(own)
  })

  it('refuses an abrupt switch to an unknown kid for at most a minute, then picks it up', async () => {
    await expectAccepted(own) // a fresh JWKS copy
    const retired = idp.keys.signing
    const abrupt = await idp.newKey()
    idp.publish([abrupt])
    idp.signWith(abrupt)
    await expectRefused(own) // the copy is younger than 60 s: fail closed, no session
    advance(61)
    await expectAccepted(own)
    idp.signWith(retired) // no longer in the JWKS
    await expectRefused(own)
    idp.signWith(abrupt)
  })
})
