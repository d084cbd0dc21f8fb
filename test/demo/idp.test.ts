/**
 * The demo IdP and API are the fixture every integration test stands on, so they are proven here
 * with openid-client v6 alone, no BFF code involved.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import * as client from 'openid-client'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startDemoApi, type DemoApi } from '../../src/demo/api.ts'
import {
  DEMO_API_CLIENT,
  DEMO_BFF_CLIENT,
  DEMO_USER,
  bffClientMetadata,
  startIdp,
  type Idp,
} from '../../src/demo/idp.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { confirmIdpLogout, loginAtIdp, type Credentials } from '../helpers/idp-login.ts'

const FULL_SCOPE = 'openid profile email offline_access'
/** Every grant counter at zero: the tests name those they expect to move. */
const NO_GRANTS = {
  authorizationCode: 0,
  refresh: 0,
  resource: 0,
  clientCredentials: 0,
  tokenExchange: 0,
}

// Stands in for the BFF: receives back-channel logout tokens. Redirects to it are never followed.
let rp: Server
let rpOrigin: string
const logoutTokens: string[] = []

let idp: Idp
let config: client.Configuration
let apiConfig: client.Configuration

beforeAll(async () => {
  rp = createServer((req, res) => {
    let body = ''
    req.on('data', (chunk) => (body += chunk))
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/bff/backchannel') {
        logoutTokens.push(new URLSearchParams(body).get('logout_token') ?? '')
        res.writeHead(200).end()
      } else res.writeHead(404).end()
    })
  })
  await new Promise<void>((resolve) => rp.listen(0, '127.0.0.1', resolve))
  rpOrigin = `http://127.0.0.1:${(rp.address() as AddressInfo).port}`

  idp = await startIdp({ redirectUris: [`${rpOrigin}/bff/callback`] })
  config = await discover(DEMO_BFF_CLIENT)
  apiConfig = await discover(DEMO_API_CLIENT)
})

afterAll(async () => {
  await idp?.stop()
  await new Promise((resolve) => rp?.close(resolve))
})

beforeEach(() => {
  idp.resetCounters()
  logoutTokens.length = 0
})

function discover(
  { clientId, clientSecret }: { clientId: string; clientSecret: string },
  issuer = idp.issuer
) {
  return client.discovery(
    new URL(issuer),
    clientId,
    undefined,
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests] }
  )
}

/** A complete authorization code flow with PKCE, state and nonce, as the BFF runs it. */
async function codeFlow(
  jar: CookieJar,
  {
    scope = FULL_SCOPE,
    user = DEMO_USER as Credentials,
    prompt,
    using = config,
    redirectUri = `${rpOrigin}/bff/callback`,
  }: {
    scope?: string
    user?: Credentials
    prompt?: string
    using?: client.Configuration
    redirectUri?: string
  } = {}
) {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizeUrl = client.buildAuthorizationUrl(using, {
    redirect_uri: redirectUri,
    scope,
    state,
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...(prompt ? { prompt } : {}),
  })
  const back = await loginAtIdp(jar, authorizeUrl, user)
  const callback = redirectLocation(back)
  expect(callback?.href.startsWith(redirectUri)).toBe(true)
  return client.authorizationCodeGrant(using, callback!, {
    pkceCodeVerifier: verifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
}

async function rejection(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
  } catch (error) {
    return (error as { error?: string }).error ?? (error as Error).message
  }
  throw new Error('expected a rejection')
}

describe('demo IdP', () => {
  it('advertises what the BFF relies on', () => {
    const metadata = config.serverMetadata()
    expect(metadata.issuer).toBe(idp.issuer)
    expect(idp.issuer).toBe(`http://127.0.0.1:${idp.port}`)
    expect(metadata).toMatchObject({
      code_challenge_methods_supported: ['S256'],
      authorization_response_iss_parameter_supported: true,
      backchannel_logout_supported: true,
      backchannel_logout_session_supported: true,
      end_session_endpoint: `${idp.issuer}/session/end`,
      revocation_endpoint: `${idp.issuer}/token/revocation`,
      introspection_endpoint: `${idp.issuer}/token/introspection`,
    })
    expect(metadata.scopes_supported).toEqual(
      expect.arrayContaining(['openid', 'offline_access', 'profile', 'email'])
    )
  })

  it('runs a code flow: login and consent pages, tokens, claims and a refresh token', async () => {
    const tokens = await codeFlow(createCookieJar())
    expect(tokens.refresh_token).toEqual(expect.any(String))
    expect(tokens.expires_in).toBe(3600)
    const claims = tokens.claims()!
    expect(claims).toMatchObject({
      iss: idp.issuer,
      aud: DEMO_BFF_CLIENT.clientId,
      sub: 'demo',
      name: 'Demo User',
      email: 'demo@example.com',
      email_verified: true,
    })
    expect(claims.sid).toEqual(expect.any(String))

    const userinfo = await client.fetchUserInfo(config, tokens.access_token, 'demo')
    expect(userinfo).toMatchObject({ sub: 'demo', name: 'Demo User', email: 'demo@example.com' })
    expect(idp.grants).toEqual({ ...NO_GRANTS, authorizationCode: 1, refresh: 0 })
  })

  it('signs any other user in with password "pass" and rejects a wrong password', async () => {
    const tokens = await codeFlow(createCookieJar(), { user: { login: 'alice', password: 'pass' } })
    expect(tokens.claims()).toMatchObject({ sub: 'alice', email: 'alice@example.com' })

    const denied = await rejection(
      codeFlow(createCookieJar(), { user: { login: 'demo', password: 'pass' } })
    )
    expect(denied).toMatch(/rejected login "demo": Invalid login or password/)
  })

  it('issues no refresh token without offline_access', async () => {
    const tokens = await codeFlow(createCookieJar(), { scope: 'openid profile' })
    expect(tokens.refresh_token).toBeUndefined()
  })

  it('reuses its session: no pages on the second login, and prompt=none still gets a refresh token', async () => {
    const jar = createCookieJar()
    await codeFlow(jar)
    const again = await codeFlow(jar, { user: { login: 'nobody', password: 'unused' } })
    expect(again.claims()?.sub).toBe('demo')
    const silent = await codeFlow(jar, { prompt: 'none' })
    expect(silent.refresh_token).toEqual(expect.any(String))
  })

  it('rotates refresh tokens; replaying a used one fails and revokes the whole grant', async () => {
    const first = await codeFlow(createCookieJar())
    const second = await client.refreshTokenGrant(config, first.refresh_token!)
    expect(second.refresh_token).toEqual(expect.any(String))
    expect(second.refresh_token).not.toBe(first.refresh_token)
    expect(second.access_token).not.toBe(first.access_token)
    expect(second.claims()?.sub).toBe('demo')
    expect(idp.grants).toEqual({ ...NO_GRANTS, authorizationCode: 1, refresh: 1 })

    expect(await rejection(client.refreshTokenGrant(config, first.refresh_token!))).toBe(
      'invalid_grant'
    )
    // oidc-provider treats the replay as token theft: the newer token dies with the grant.
    expect(await rejection(client.refreshTokenGrant(config, second.refresh_token!))).toBe(
      'invalid_grant'
    )
    expect(idp.grants).toEqual({ ...NO_GRANTS, authorizationCode: 1, refresh: 1 }) // failures are not counted

    idp.resetCounters()
    expect(idp.grants).toEqual({ ...NO_GRANTS, authorizationCode: 0, refresh: 0 })
  })

  it('introspects tokens for the API client, and revoking the refresh token ends the grant', async () => {
    const tokens = await codeFlow(createCookieJar())
    const active = await client.tokenIntrospection(apiConfig, tokens.access_token)
    expect(active).toMatchObject({ active: true, sub: 'demo', client_id: DEMO_BFF_CLIENT.clientId })
    expect(active.scope?.split(' ')).toEqual(expect.arrayContaining(['openid', 'profile', 'email']))
    expect(await client.tokenIntrospection(apiConfig, tokens.refresh_token!)).toMatchObject({
      active: true,
    })

    await client.tokenRevocation(config, tokens.refresh_token!)
    expect(await client.tokenIntrospection(apiConfig, tokens.refresh_token!)).toEqual({
      active: false,
    })
    expect(await client.tokenIntrospection(apiConfig, tokens.access_token)).toEqual({
      active: false,
    })
  })

  it('logs out through the end-session page and notifies the client over the back channel', async () => {
    const jar = createCookieJar()
    const tokens = await codeFlow(jar)
    const endSession = client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: `${rpOrigin}/`,
      state: 'after-logout',
    })
    const back = await confirmIdpLogout(jar, endSession)
    expect(redirectLocation(back)?.href).toBe(`${rpOrigin}/?state=after-logout`)

    expect(idp.backchannel).toEqual({ success: 1, error: 0 })
    expect(logoutTokens).toHaveLength(1)
    const [, payload = ''] = logoutTokens[0]!.split('.')
    const logoutToken = JSON.parse(Buffer.from(payload, 'base64url').toString())
    expect(logoutToken).toMatchObject({
      iss: idp.issuer,
      aud: DEMO_BFF_CLIENT.clientId,
      sub: 'demo',
      sid: tokens.claims()!.sid,
      events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
    })

    // The IdP session is gone: the next login shows the login page again.
    const rejected = await rejection(codeFlow(jar, { user: { login: 'demo', password: 'x' } }))
    expect(rejected).toMatch(/rejected login/)
    // An offline grant outlives the IdP session (oidc-provider's default for offline_access).
    expect(await client.refreshTokenGrant(config, tokens.refresh_token!)).toHaveProperty(
      'access_token'
    )
  })

  it("names the app on its pages, never the IdP's host, and loads nothing from elsewhere", async () => {
    // The page text a person reads: tags, the inline style and the form's URLs left out.
    const text = (html: string) =>
      html
        .replace(/<(style|svg)\b[\s\S]*?<\/\1>/gi, '')
        .replace(/<[^>]+>/g, ' ')
        .replace(/\s+/g, ' ')
    const expectPage = (res: Response, html: string) => {
      const csp = res.headers.get('content-security-policy') ?? ''
      expect(csp).toMatch(/^default-src 'none'; style-src 'sha256-[\w+/=]+'; img-src data:;/)
      expect(html).not.toMatch(/<script|\bstyle="|(src|href)="https?:/i)
      expect(text(html)).not.toContain('127.0.0.1')
    }
    const jar = createCookieJar()
    const authorizeUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: `${rpOrigin}/bff/callback`,
      scope: FULL_SCOPE,
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    })
    const login = await jar.follow(await jar.get(authorizeUrl))
    const loginHtml = await login.text()
    expect(text(loginHtml)).toContain('Sign in to continue to Demo App')
    expectPage(login, loginHtml)

    const tokens = await codeFlow(jar)
    const endSession = client.buildEndSessionUrl(config, { id_token_hint: tokens.id_token! })
    const logout = await jar.get(endSession)
    const logoutHtml = await logout.text()
    expect(text(logoutHtml)).toContain('Sign out of Demo App?')
    expectPage(logout, logoutHtml)
    // Without a hint the IdP cannot tell which app asks: it names itself.
    const bare = await jar.get(`${idp.issuer}/session/end`)
    const bareHtml = await bare.text()
    expect(text(bareHtml)).toContain('Sign out of Demo Identity?')
    expectPage(bare, bareHtml)

    const error = await jar.get(`${idp.issuer}/auth?client_id=nobody`)
    const errorHtml = await error.text()
    expect(error.status).toBe(400)
    expect(errorHtml).toContain('<p class="error" role="alert">')
    expectPage(error, errorHtml)
  })

  it('registers clients after start', async () => {
    const redirectUri = `${rpOrigin}/late/callback`
    await idp.addClient(
      bffClientMetadata({
        clientId: 'late',
        clientSecret: 'late-secret',
        redirectUris: [redirectUri],
      })
    )
    const late = await discover({ clientId: 'late', clientSecret: 'late-secret' })
    const tokens = await codeFlow(createCookieJar(), { using: late, redirectUri })
    expect(tokens.claims()).toMatchObject({ aud: 'late', sid: expect.any(String) })
    expect(tokens.refresh_token).toEqual(expect.any(String))
  })

  it('honours accessTokenTtl and rotateRefreshToken: false', async () => {
    const other = await startIdp({
      redirectUris: [`${rpOrigin}/bff/callback`],
      accessTokenTtl: 5,
      rotateRefreshToken: false,
    })
    try {
      const otherConfig = await discover(DEMO_BFF_CLIENT, other.issuer)
      const tokens = await codeFlow(createCookieJar(), { using: otherConfig })
      expect(tokens.expires_in).toBe(5)
      const refreshed = await client.refreshTokenGrant(otherConfig, tokens.refresh_token!)
      expect(refreshed.refresh_token).toBe(tokens.refresh_token)
      expect(other.grants).toEqual({ ...NO_GRANTS, authorizationCode: 1, refresh: 1 })
    } finally {
      await other.stop()
    }
  })
})

describe('demo API', () => {
  let api: DemoApi

  beforeAll(async () => {
    api = await startDemoApi({ issuer: idp.issuer, ...DEMO_API_CLIENT })
  })
  afterAll(() => api?.stop())

  it('answers /hello to a valid bearer token', async () => {
    const tokens = await codeFlow(createCookieJar())
    const response = await fetch(`${api.url}/hello`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    })
    expect(response.status).toBe(200)
    const body = await response.json()
    expect(body).toMatchObject({ message: 'Hello, demo!', sub: 'demo' })
    expect(body.scope).toContain('openid')
    expect(Date.parse(body.time)).not.toBeNaN()
  })

  it('answers 401 JSON without a token, with an unknown one and with a revoked one', async () => {
    const missing = await fetch(`${api.url}/hello`)
    expect(missing.status).toBe(401)
    expect(missing.headers.get('www-authenticate')).toBe('Bearer, DPoP algs="ES256 PS256 EdDSA"')
    expect(await missing.json()).toMatchObject({ error: 'unauthorized' })

    const unknown = await fetch(`${api.url}/hello`, { headers: { authorization: 'Bearer nope' } })
    expect(unknown.status).toBe(401)
    expect(await unknown.json()).toMatchObject({ error: 'invalid_token' })

    const tokens = await codeFlow(createCookieJar())
    await client.tokenRevocation(config, tokens.refresh_token!)
    const revoked = await fetch(`${api.url}/hello`, {
      headers: { authorization: `Bearer ${tokens.access_token}` },
    })
    expect(revoked.status).toBe(401)
  })

  it('echoes what it received on /echo but no credential, and takes an introspection function', async () => {
    const token = 'good-token-0123456789'
    const stub = await startDemoApi({
      introspect: async (t) => ({ active: t === token, sub: 'stub', scope: 'openid', exp: 99 }),
    })
    try {
      const response = await fetch(`${stub.url}/echo/a?b=c`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          dpop: `proof-naming-${token}`,
          'x-forwarded-host': 'app.test',
        },
        body: 'payload',
      })
      const text = await response.text()
      const echo = JSON.parse(text)
      expect(echo).toMatchObject({
        method: 'POST',
        path: '/echo/a',
        query: { b: 'c' },
        headers: { 'x-forwarded-host': 'app.test' },
        body: 'payload',
        sub: 'stub',
        token: { scheme: 'Bearer', active: true, sub: 'stub', scope: 'openid', exp: 99 },
      })
      // The demo shows that no token reaches the page: /echo never sends one back.
      expect(echo.headers).not.toHaveProperty('authorization')
      expect(echo.headers).not.toHaveProperty('dpop')
      expect(text).not.toContain(token.slice(0, 12))
      expect(
        (await fetch(`${stub.url}/echo`, { headers: { authorization: 'Bearer bad' } })).status
      ).toBe(401)
      expect((await fetch(`${stub.url}/nothing`)).status).toBe(404)
    } finally {
      await stub.stop()
    }
  })
})

// The jar every integration test logs in with; checked here until it has a test file of its own.
describe('test helper: cookie jar', () => {
  it('keeps cookies per origin and path, deletes them on Max-Age=0 or a past Expires', async () => {
    const server = createServer((req, res) => {
      const cookies: Record<string, string[]> = {
        '/set': ['a=1; Path=/', 'b=2; Path=/deep; HttpOnly', 'c=3; Max-Age=60'],
        '/drop': ['a=; Max-Age=0; Path=/', 'b=; Path=/deep; Expires=Thu, 01 Jan 1970 00:00:00 GMT'],
      }
      res.writeHead(req.url === '/set' ? 302 : 200, {
        'set-cookie': cookies[req.url ?? ''] ?? [],
        location: '/deep/page',
        'x-cookie': req.headers.cookie ?? '',
      })
      res.end()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      const jar = createCookieJar({ baseUrl: origin })
      const set = await jar.get('/set')
      expect(jar.lastSetCookies).toHaveLength(3)
      expect(jar.cookies('/')).toEqual({ a: '1', c: '3' })
      const deep = await jar.follow(set)
      expect(deep.url).toBe(`${origin}/deep/page`)
      expect(deep.headers.get('x-cookie')).toBe('b=2; a=1; c=3') // longer path first
      expect(jar.cookies(rpOrigin)).toEqual({})

      await jar.get('/drop')
      expect(jar.cookies('/deep/page')).toEqual({ c: '3' })
    } finally {
      await new Promise((resolve) => server.close(resolve))
    }
  })
})
