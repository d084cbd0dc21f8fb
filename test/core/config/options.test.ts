/**
 * `createBff(options)`: typed options written by hand, their defaults applied and every rule
 * checked once, at construction; a `Config` from `optionsFromEnv` taken as well.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  ConfigError,
  createBff,
  optionsFromEnv,
  parseConfig,
  type BffOptions,
} from '../../../src/index.ts'
import { resolveOptions } from '../../../src/core/config/resolve.ts'
import { DEMO_BFF_CLIENT, startIdp, type Idp } from '../../../src/demo/idp.ts'
import { createCookieJar, redirectLocation } from '../../helpers/http.ts'
import { loginAtIdp } from '../../helpers/idp-login.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../../helpers/upstream.ts'

const SECRET = 'a-session-secret-of-at-least-32-characters!'
const OLD_SECRET = 'an-older-session-secret-still-32-chars-long'

const options: BffOptions = {
  issuer: 'https://idp.example.com',
  clientId: 'bff-client',
  clientSecret: 'client-secret-value',
  baseUrl: 'https://app.example.com',
  sessionSecret: SECRET,
}

/** The problems createBff reports; fails the test when it does not throw a ConfigError. */
function problemsOf(input: unknown): readonly string[] {
  try {
    createBff(input as BffOptions)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe('invalid_config')
    return (err as ConfigError).problems
  }
  throw new Error('createBff accepted invalid options')
}

describe('createBff(options): mistakes throw at construction, naming the option', () => {
  it('names each bad option, all at once', () => {
    const problems = problemsOf({
      issuer: 'http://idp.example.com',
      clientId: '',
      clientSecret: 42,
      baseUrl: 'https://app.example.com/app',
      sessionSecret: ['x'.repeat(40), 'short'],
      scopes: ['profile'],
      routes: [{ prefix: '/bff/x/', upstream: 'https://api.example/' }, { prefix: '/api/' }],
      sessionStore: 'postgres',
      postLogoutRedirect: 'https://evil.example',
      idleTimeoutSeconds: '300',
      cookieMaxBytes: 99_999,
      adminToken: 'short',
      clientid: 'typo',
    })
    expect(problems).toEqual([
      '"clientid" is not a known option',
      '"issuer" must use https (http is allowed only on localhost), got "http://idp.example.com/"',
      '"clientId" must be a non-empty string',
      '"clientSecret" must be a non-empty string',
      '"scopes" must include "openid", got "profile"',
      '"baseUrl" must be an origin without path, query or fragment, got "https://app.example.com/app"',
      '"sessionSecret" entry 2 is 5 characters; each must be at least 32',
      '"routes[0].prefix" prefix "/bff/x/" must be a plain path starting with "/" and not under /bff',
      '"routes[1].upstream" must be a URL or a string',
      '"sessionStore" must be one of cookie, memory, redis, durable-object, got "postgres"',
      '"postLogoutRedirect" must be a relative path starting with "/", got "https://evil.example"',
      '"idleTimeoutSeconds" must be a number of seconds >= 60, got "300"',
      '"cookieMaxBytes" must be at most 4096, the browsers\' limit',
      '"adminToken" must be at least 32 characters when set',
    ])
  })

  it('names the required options when they are missing', () => {
    expect(problemsOf({})).toEqual([
      '"issuer" is required',
      '"clientId" is required: the client id registered at the IdP',
      '"clientSecret" is required: the client secret registered at the IdP',
      '"baseUrl" is required',
      '"sessionSecret" is required: at least 32 random characters',
    ])
    expect(problemsOf(undefined)).toEqual(['options must be an object'])
  })

  it('never echoes a secret in a problem', () => {
    const short = 'short-but-secret-Xq9'
    let caught: unknown
    try {
      createBff({ ...options, sessionSecret: [SECRET, short], clientSecret: '' })
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(ConfigError)
    expect((caught as ConfigError).message).not.toContain('Xq9')
    expect((caught as ConfigError).message).not.toContain(SECRET)
  })

  it('refuses a store it cannot build itself, at construction', () => {
    const config = parseConfig({
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'spa',
      BFF_CLIENT_SECRET: 'secret',
      BFF_BASE_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: SECRET,
      BFF_SESSION_STORE: 'durable-object',
    })
    expect(() => createBff(config)).toThrow(ConfigError)
    expect(() => createBff(config)).toThrow(/"sessionStore" "durable-object" needs .*deps\.store/)
  })
})

describe('several IdPs as options', () => {
  const rest = { baseUrl: options.baseUrl, sessionSecret: options.sessionSecret }
  const idps = {
    corp: { issuer: 'https://corp.example', clientId: 'a', clientSecret: 'b' },
    partner: { issuer: 'https://partner.example', clientId: 'c', clientSecret: 'd', label: 'P' },
  }

  it('resolves each, in order, at /bff/callback/<name>; a resolved Config resolves the same', () => {
    const config = resolveOptions({ ...rest, idps })
    expect(config.idps.map((idp) => [idp.name, idp.label, idp.callbackPath])).toEqual([
      ['corp', 'corp', '/bff/callback/corp'],
      ['partner', 'P', '/bff/callback/partner'],
    ])
    expect(resolveOptions(config)).toEqual(config)
  })

  it('refuses idps next to the single-IdP options, a bad name, an unknown key, none at all', () => {
    expect(problemsOf({ ...options, idps })).toEqual([
      '"issuer" and "idps" are both set: keep one',
      '"clientId" and "idps" are both set: keep one',
      '"clientSecret" and "idps" are both set: keep one',
    ])
    expect(
      problemsOf({ ...rest, idps: { 'a b': idps.corp, x: { ...idps.corp, secret: 1 } } })
    ).toEqual([
      '"idps["a b"]" is not a usable IdP name: 1-64 letters, digits, "-" or "_"',
      '"idps.x.secret" is not a known option',
    ])
    expect(problemsOf({ ...rest, idps: {} })).toEqual(['"idps" must name an IdP'])
    expect(problemsOf({ ...rest, idps: [] })).toEqual(['"idps" must be an object of IdPs by name'])
  })
})

describe('resolved options: the defaults', () => {
  it('applies every default and normalises what was written', () => {
    const config = resolveOptions(options)
    expect(config).toEqual({
      issuer: new URL('https://idp.example.com'),
      clientId: 'bff-client',
      clientSecret: 'client-secret-value',
      clientAuth: 'client_secret_basic',
      baseUrl: 'https://app.example.com',
      sessionSecrets: [SECRET],
      scopes: 'openid profile email offline_access',
      api: [],
      sessionStore: 'cookie',
      postLogoutRedirect: '/',
      par: false,
      dpop: false,
      refreshSkewSeconds: 30,
      sessionLifetimeSeconds: 12 * 3600,
      idleTimeoutSeconds: 30 * 60,
      upstreamTimeoutMs: 30_000,
      idpTimeoutSeconds: 10,
      adminToken: undefined,
      cookieMaxBytes: 3584,
      cookieTotalBytes: 8192,
      liveMaxPerSession: 16,
      liveMaxPerInstance: 20_000,
      idpName: 'default',
      claims: {},
      idps: [
        {
          name: 'default',
          label: 'default',
          issuer: new URL('https://idp.example.com'),
          clientId: 'bff-client',
          clientSecret: 'client-secret-value',
          clientAuth: 'client_secret_basic',
          par: false,
          dpop: false,
          scopes: 'openid profile email offline_access',
          claims: {},
          callbackPath: '/bff/callback',
          backchannelPath: '/bff/backchannel',
        },
      ],
    })
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.sessionSecrets)).toBe(true)
  })

  it('takes URLs, lists and seconds as written', () => {
    const config = resolveOptions({
      ...options,
      issuer: new URL('http://127.0.0.1:9000/realms/x'),
      baseUrl: new URL('http://localhost:3000'),
      sessionSecret: [SECRET, OLD_SECRET],
      scopes: ['openid', 'email'],
      routes: [
        { prefix: '/api', upstream: new URL('http://127.0.0.1:4000/base') },
        { prefix: '/api/v2/', upstream: 'https://v2.example/' },
      ],
      upstreamTimeoutSeconds: 2.5,
    })
    expect(config.issuer.href).toBe('http://127.0.0.1:9000/realms/x')
    expect(config.baseUrl).toBe('http://localhost:3000')
    expect(config.sessionSecrets).toEqual([SECRET, OLD_SECRET])
    expect(config.scopes).toBe('openid email')
    // Longest prefix first, both sides ending with "/".
    expect(config.api.map((r) => [r.prefix, r.upstream.href])).toEqual([
      ['/api/v2/', 'https://v2.example/'],
      ['/api/', 'http://127.0.0.1:4000/base/'],
    ])
    expect(config.upstreamTimeoutMs).toBe(2500)
  })

  it('takes a Config from the settings unchanged: the same resolved options', () => {
    const fromEnv = optionsFromEnv({
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'bff-client',
      BFF_CLIENT_SECRET: 'client-secret-value',
      BFF_BASE_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: `${SECRET},${OLD_SECRET}`,
      BFF_API: '/api/=http://127.0.0.1:4000/',
      BFF_SESSION_STORE: 'redis',
      BFF_UPSTREAM_TIMEOUT: '0.5',
      BFF_ADMIN_TOKEN: 'b'.repeat(32),
    })
    expect(resolveOptions(fromEnv)).toEqual(fromEnv)
    expect(parseConfig).toBe(optionsFromEnv)
  })
})

describe('createBff(options) written by hand, against a real IdP', () => {
  let idp: Idp
  let upstream: RecordingUpstream
  // The demo IdP's default client redirects to http://localhost:3000/bff/callback.
  const base = 'http://localhost:3000'

  beforeAll(async () => {
    idp = await startIdp()
    upstream = await startRecordingUpstream()
  })
  afterAll(async () => {
    await upstream?.close()
    await idp?.stop()
  })

  it('logs in and proxies a route with the bearer token', async () => {
    const app = createBff(
      {
        issuer: idp.issuer,
        clientId: DEMO_BFF_CLIENT.clientId,
        clientSecret: DEMO_BFF_CLIENT.clientSecret,
        baseUrl: base,
        sessionSecret: SECRET,
        routes: [{ prefix: '/api/', upstream: upstream.url }],
      },
      { log: () => {} }
    )
    const health = await app.request(`${base}/bff/health`)
    expect(await health.json()).toMatchObject({ status: 'ok', store: 'cookie', idp: 'ok' })

    const login = await app.request(`${base}/bff/login?returnTo=/after`)
    expect(login.status).toBe(302)
    const authorize = new URL(login.headers.get('location')!)
    expect(authorize.origin).toBe(new URL(idp.issuer).origin)
    expect(authorize.searchParams.get('client_id')).toBe(DEMO_BFF_CLIENT.clientId)
    expect(authorize.searchParams.get('redirect_uri')).toBe(`${base}/bff/callback`)
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256')
    expect(authorize.searchParams.get('scope')).toBe('openid profile email offline_access')

    const atIdp = await loginAtIdp(createCookieJar(), authorize, {
      login: 'alice',
      password: 'pass',
    })
    const callback = await app.request(redirectLocation(atIdp)!, {
      headers: { cookie: cookiesOf(login) },
    })
    expect(callback.status).toBe(302)
    expect(callback.headers.get('location')).toBe('/after')

    const session = { cookie: cookiesOf(callback), 'x-csrf': '1' }
    const user = await app.request(`${base}/bff/user`, { headers: session })
    expect(user.status).toBe(200)
    expect(await user.json()).toMatchObject({ sub: 'alice' })

    const api = await app.request(`${base}/api/orders`, { headers: session })
    expect(api.status).toBe(200)
    expect(upstream.requests.at(-1)).toMatchObject({ url: '/orders' })
    expect(upstream.requests.at(-1)!.headers.authorization).toMatch(/^Bearer \S+/)
  })
})

/** The `Cookie` header a browser would send back after `response` (cleared cookies left out). */
function cookiesOf(response: Response): string {
  return response.headers
    .getSetCookie()
    .map((line) => line.split(';')[0]!)
    .filter((pair) => !pair.endsWith('='))
    .join('; ')
}
