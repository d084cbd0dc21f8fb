/**
 * Route policy keys at start-up (config/route-policy.ts, resolve.ts): the keys the proxy enforces
 * are taken, those it does not yet (and the token modes `client`, `exchange`) are refused naming
 * the route and key; the IdP's name and claims map reach the Config; a route's `idps` must name a
 * configured IdP.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError, parseConfig, type Env } from '../../../src/core/config/env.ts'
import { resolveOptions } from '../../../src/core/config/resolve.ts'
import type { BffOptions } from '../../../src/core/config/options.ts'

const SECRET = 'a-session-secret-of-at-least-32-characters!'
const env: Env = {
  BFF_BASE_URL: 'https://app.example.com',
  BFF_SESSION_SECRET: SECRET,
  CORP_SECRET: 's3cret',
}
const idps = {
  corp: {
    issuer: 'https://login.corp.example',
    clientId: 'bff',
    clientSecret: '${CORP_SECRET}',
    claims: { roles: 'realm_access.roles' },
  },
}
const upstream = 'https://svc.example/'
const options: BffOptions = {
  issuer: 'https://idp.example.com',
  clientId: 'bff',
  clientSecret: 'secret',
  baseUrl: 'https://app.example.com',
  sessionSecret: SECRET,
}

function problemsOf(run: () => unknown): readonly string[] {
  try {
    run()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('the configuration was accepted')
}
const fileProblems = (file: unknown, settings: Env = env) =>
  problemsOf(() => parseConfig(settings, { configFile: file }))

describe('route policy keys at start-up', () => {
  it('takes the keys the proxy enforces', () => {
    const config = parseConfig(env, {
      configFile: {
        idps,
        routes: [
          {
            prefix: '/api/',
            upstream,
            methods: ['GET', 'POST'],
            token: 'optional',
            idps: ['corp'],
            require: { roles: ['admin', 'owner'], email_verified: true },
            scopes: ['orders:read'],
            acr: 'mfa',
            maxAge: 300,
          },
          { prefix: '/public/', upstream, token: 'none' },
        ],
      },
    })
    const api = config.api.find((route) => route.prefix === '/api/')!
    expect([...api.methods!]).toEqual(['GET', 'POST'])
    expect(api).toMatchObject({
      token: 'optional',
      idps: ['corp'],
      require: { roles: ['admin', 'owner'], email_verified: true },
      scopes: ['orders:read'],
      acr: ['mfa'],
      maxAge: 300,
    })
    // A Config given to createBff again resolves to the same (methods are a Set by then).
    expect(resolveOptions(config)).toEqual(config)
  })

  it('takes client, exchange, resource and websocket; refuses a websocket that is no boolean', () => {
    const problems = fileProblems({
      idps,
      routes: [
        { prefix: '/a/', upstream, token: 'client', scopes: ['reports'] },
        { prefix: '/b/', upstream, token: 'exchange', resource: 'https://ledger.example' },
        { prefix: '/c/', upstream, websocket: true },
        { prefix: '/d/', upstream, resource: 'urn:orders' },
        { prefix: '/e/', upstream, websocket: 'yes' },
      ],
    })
    expect(problems).toEqual(['BFF_CONFIG routes[4].websocket: must be true or false'])
  })

  it('refuses a route naming an IdP that is not configured', () => {
    expect(
      fileProblems({ idps, routes: [{ prefix: '/a/', upstream, idps: ['corp', 'partner'] }] })
    ).toEqual([
      'BFF_CONFIG routes[0].idps: names IdPs that are not configured: partner (configured: corp)',
    ])
    // The env-configured IdP is "default".
    expect(
      problemsOf(() =>
        resolveOptions({ ...options, routes: [{ prefix: '/a/', upstream, idps: ['corp'] }] })
      )
    ).toEqual(['"routes[0].idps" names IdPs that are not configured: corp (configured: default)'])
  })

  it('refuses prototype-named claims, which would vanish from the requirements', () => {
    const require = JSON.parse('{"__proto__": ["admin"], "constructor": "x", "roles": "admin"}')
    expect(fileProblems({ idps, routes: [{ prefix: '/a/', upstream, require }] })).toEqual([
      'BFF_CONFIG routes[0].require.__proto__: is not a usable key',
      'BFF_CONFIG routes[0].require.constructor: is not a usable key',
    ])
    const claims = JSON.parse('{"prototype": "a"}')
    expect(fileProblems({ idps: { corp: { ...idps.corp, claims } } })).toEqual([
      'BFF_CONFIG idps.corp.claims.prototype: is not a usable key',
    ])
    expect(
      problemsOf(() =>
        resolveOptions({ ...options, routes: [{ prefix: '/a/', upstream, require }] })
      )
    ).toEqual(['"routes[0].require.__proto__" is not a usable claim name'])
  })
})

describe('the IdP’s name and claims map', () => {
  it('come from the file’s IdP entry; the env-configured IdP is "default" without a map', () => {
    const fromFile = parseConfig(env, { configFile: { idps } })
    expect(fromFile.idpName).toBe('corp')
    expect(fromFile.claims).toEqual({ roles: 'realm_access.roles' })
    const fromEnv = parseConfig({
      ...env,
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'bff',
      BFF_CLIENT_SECRET: 'x',
    })
    expect(fromEnv.idpName).toBe('default')
    expect(fromEnv.claims).toEqual({})
    expect(resolveOptions(fromFile)).toEqual(fromFile)
  })

  it('refuses a map entry that is no dot path, naming it', () => {
    const bad = { corp: { ...idps.corp, claims: { roles: 'realm_access..roles', ok: 'a.b' } } }
    expect(fileProblems({ idps: bad })).toEqual([
      'BFF_CONFIG idps.corp.claims.roles: must be a dot path into the claims, e.g. "realm_access.roles"',
    ])
    expect(
      problemsOf(() => resolveOptions({ ...options, idpName: 'a b', claims: { x: '.y' } }))
    ).toEqual([
      '"idpName" must be 1-64 letters, digits, "-" or "_"',
      '"claims.x" must be a dot path into the claims, e.g. "realm_access.roles"',
    ])
  })
})
