/**
 * Pushed authorization requests (RFC 9126) and private_key_jwt client authentication (RFC 7523)
 * against the real oidc-provider, through a front that records every call the BFF makes to it:
 * login, refresh and logout (revocation) with each and with both, on Node and in workerd.
 */
import { generateKeyPairSync } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import { introspectAsApi } from '../helpers/introspect.ts'
import { startIdpFront, type FrontRequest, type IdpFront } from '../helpers/idp-front.ts'
import { loginRefreshLogout as loginRefreshAndLogout } from './flows.ts'
import { CSRF, startStack, type Stack, type StackOptions } from './harness.ts'

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const EC_JWK = { ...(ec.privateKey.export({ format: 'jwk' }) as JsonWebKey), kid: 'bff-ec-1' }
const EC_PUBLIC = { ...(ec.publicKey.export({ format: 'jwk' }) as JsonWebKey), kid: EC_JWK.kid }
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const RSA_PEM = rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
const RSA_PUBLIC = rsa.publicKey.export({ format: 'jwk' }) as JsonWebKey
// A key the IdP has never seen: what a BFF with a stolen client id but not the key would sign with.
const other = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const OTHER_JWK = { ...(other.privateKey.export({ format: 'jwk' }) as JsonWebKey), kid: 'bff-ec-1' }

/** The BFF's client at the IdP authenticating with private_key_jwt and these public keys. */
const pkjwtClient = (...keys: JsonWebKey[]) => ({
  token_endpoint_auth_method: 'private_key_jwt',
  client_secret: undefined,
  jwks: { keys: keys.map((key) => ({ ...key, use: 'sig' })) },
})
/** The settings of the env-only IdP with private_key_jwt and `key`. */
const pkjwtEnv = (key: string) => ({
  BFF_CLIENT_AUTH: 'private_key_jwt',
  BFF_CLIENT_KEY: key,
  BFF_CLIENT_SECRET: undefined,
})

async function stackWithFront(options: StackOptions): Promise<{ stack: Stack; front: IdpFront }> {
  const front = await startIdpFront()
  const stack = await startStack({ ...options, front })
  return { stack, front }
}

/** Starts a login; the IdP authorization URL the browser is sent to. */
async function loginStart(stack: Stack, jar: CookieJar): Promise<URL> {
  const start = await jar.get('/bff/login?returnTo=/')
  expect(start.status).toBe(302)
  return redirectLocation(start)!
}

/** Login, a refresh, and logout; returns the refresh tokens that must now be dead. */
async function loginRefreshLogout(stack: Stack): Promise<string[]> {
  const { refreshed } = await loginRefreshAndLogout(stack)
  return [refreshed.refreshToken!]
}

const activeAtIdp = async (stack: Stack, token: string) =>
  (await introspectAsApi(stack.idp, token)).active

const form = (req: FrontRequest) => new URLSearchParams(req.body)
const callsTo = (front: IdpFront, path: string) =>
  front.seen.filter((req) => req.method === 'POST' && req.url.split('?')[0] === path)

/** Every call to `path` authenticated with a client assertion only, each one fresh. */
function expectAssertions(front: IdpFront, path: string, issuer: string) {
  const calls = callsTo(front, path)
  expect(calls.length).toBeGreaterThan(0)
  const jtis = new Set<string>()
  for (const call of calls) {
    expect(call.headers.authorization).toBeUndefined()
    expect(form(call).get('client_secret')).toBeNull()
    expect(form(call).get('client_assertion_type')).toBe(ASSERTION_TYPE)
    const assertion = form(call).get('client_assertion')!
    const [header, payload] = assertion
      .split('.')
      .slice(0, 2)
      .map((part) => {
        return JSON.parse(Buffer.from(part, 'base64url').toString()) as Record<string, unknown>
      })
    expect(header).toMatchObject({ alg: expect.stringMatching(/^(ES256|RS256)$/) })
    expect(payload).toMatchObject({ iss: 'bff', sub: 'bff', aud: issuer })
    expect((payload!.exp as number) - (payload!.iat as number)).toBeLessThanOrEqual(60)
    jtis.add(payload!.jti as string)
  }
  expect(jtis.size).toBe(calls.length)
  return calls
}

describe('PAR (BFF_PAR=true)', () => {
  let stack: Stack
  let front: IdpFront
  beforeAll(async () => ({ stack, front } = await stackWithFront({ env: { BFF_PAR: 'true' } })))
  afterAll(async () => {
    await stack.close()
    await front.close()
  })

  it('sends the browser to the IdP with only client_id and request_uri', async () => {
    const url = await loginStart(stack, stack.jar())
    expect([...url.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri'])
    expect(url.searchParams.get('request_uri')).toMatch(/^urn:ietf:params:oauth:request_uri:/)
    // The parameters went to the IdP directly, with the client's secret.
    const pushed = callsTo(front, '/request').at(-1)!
    expect(form(pushed).get('code_challenge_method')).toBe('S256')
    expect(form(pushed).get('redirect_uri')).toBe(`${stack.baseUrl}/bff/callback`)
    expect(pushed.headers.authorization).toMatch(/^Basic /)
  })

  it('logs in, refreshes and logs out (the refresh token revoked)', async () => {
    for (const token of await loginRefreshLogout(stack)) {
      expect(await activeAtIdp(stack, token)).toBe(false)
    }
  })
})

describe('PAR required by the IdP', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ idp: { par: 'required' } })
  })
  afterAll(() => stack.close())

  it('is used without par, as discovery asks', async () => {
    const url = await loginStart(stack, stack.jar())
    expect([...url.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri'])
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
  })
})

describe('PAR on, the IdP without a PAR endpoint', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ idp: { par: false }, env: { BFF_PAR: 'true' } })
  })
  afterAll(() => stack.close())

  it('answers logins 503 and says why in the log', async () => {
    const jar = stack.jar()
    const start = await jar.get('/bff/login?returnTo=/', {
      headers: { accept: 'application/json' },
    })
    expect(start.status).toBe(503)
    expect(start.headers.get('location')).toBeNull()
    await expect
      .poll(() => stack.logs().filter((line) => line.includes('oidc.par_unsupported')).length)
      .toBeGreaterThan(0)
  })
})

describe('private_key_jwt (BFF_CLIENT_KEY, an EC JWK)', () => {
  let stack: Stack
  let front: IdpFront
  beforeAll(async () => {
    ;({ stack, front } = await stackWithFront({
      env: pkjwtEnv(JSON.stringify(EC_JWK)),
      clientMetadata: pkjwtClient(EC_PUBLIC),
    }))
  })
  afterAll(async () => {
    await stack.close()
    await front.close()
  })

  it('authenticates the code grant, the refresh and the revocation with fresh assertions', async () => {
    const dead = await loginRefreshLogout(stack)
    const tokenCalls = expectAssertions(front, '/token', front.url)
    expect(tokenCalls.map((call) => form(call).get('grant_type'))).toEqual([
      'authorization_code',
      'refresh_token',
    ])
    expectAssertions(front, '/token/revocation', front.url)
    for (const token of dead) expect(await activeAtIdp(stack, token)).toBe(false)
  })
})

describe('PAR and private_key_jwt together (config file, PKCS#8 RSA key, rotation list)', () => {
  let stack: Stack
  let front: IdpFront
  beforeAll(async () => {
    ;({ stack, front } = await stackWithFront({
      configFile: ({ issuer, upstream }) => ({
        idps: {
          corp: {
            issuer,
            clientId: 'bff',
            clientAuth: 'private_key_jwt',
            // The first signs; the second is the next key, registered at the IdP in advance.
            clientKey: [RSA_PEM, EC_JWK],
            par: true,
          },
        },
        routes: [
          { prefix: '/api/', upstream: `${upstream}/` },
          {
            prefix: '/reports/',
            upstream: `${upstream}/reports/`,
            token: 'client',
            resource: 'https://reports.example',
          },
          {
            prefix: '/ledger/',
            upstream: `${upstream}/ledger/`,
            token: 'exchange',
            resource: 'https://ledger.example',
          },
        ],
      }),
      clientMetadata: pkjwtClient(RSA_PUBLIC, EC_PUBLIC),
    }))
  })
  afterAll(async () => {
    await stack.close()
    await front.close()
  })

  it('pushes the request with an assertion and sends the browser only client_id and request_uri', async () => {
    const url = await loginStart(stack, stack.jar())
    expect([...url.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri'])
    const [pushed] = expectAssertions(front, '/request', front.url)
    expect(pushed!.headers.authorization).toBeUndefined()
    const header = JSON.parse(
      Buffer.from(form(pushed!).get('client_assertion')!.split('.')[0]!, 'base64url').toString()
    )
    expect(header.alg).toBe('RS256') // the first key of the list
  })

  it('logs in, refreshes and logs out', async () => {
    for (const token of await loginRefreshLogout(stack)) {
      expect(await activeAtIdp(stack, token)).toBe(false)
    }
    expectAssertions(front, '/token', front.url)
    expectAssertions(front, '/token/revocation', front.url)
  })

  it('authenticates client-credentials and token-exchange grants with assertions too', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    const before = callsTo(front, '/token').length
    expect((await jar.get('/reports/x', { headers: CSRF })).status).toBe(200)
    expect((await jar.get('/ledger/x', { headers: CSRF })).status).toBe(200)
    const grants = expectAssertions(front, '/token', front.url)
      .slice(before)
      .map((call) => form(call).get('grant_type'))
    expect(grants).toEqual([
      'client_credentials',
      'urn:ietf:params:oauth:grant-type:token-exchange',
    ])
  })
})

describe('private_key_jwt with a key the IdP does not know', () => {
  let stack: Stack
  afterAll(() => stack?.close())

  it('is refused by the IdP: the login fails and no session is made', async () => {
    stack = await startStack({
      env: pkjwtEnv(JSON.stringify(OTHER_JWK)),
      clientMetadata: pkjwtClient(EC_PUBLIC),
    })
    const jar = stack.jar()
    const callback = await stack.login(jar)
    expect(callback.status).toBeGreaterThanOrEqual(400)
    expect(await stack.sessionOf(jar)).toBeNull()
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
  })

  it('with PAR, is refused at the push: no redirect to the IdP', async () => {
    await stack.close()
    stack = await startStack({
      env: { ...pkjwtEnv(JSON.stringify(OTHER_JWK)), BFF_PAR: 'true' },
      clientMetadata: pkjwtClient(EC_PUBLIC),
    })
    const start = await stack.jar().get('/bff/login?returnTo=/', {
      headers: { accept: 'application/json' },
    })
    expect(start.status).toBe(502)
    expect(await start.json()).toMatchObject({ error: 'idp_error' })
  })
})
