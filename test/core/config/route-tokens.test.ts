/**
 * The start-up rules of per-route tokens (`token`, `resource`, `scopes` for `client`), as the
 * options and the config file write them, and the documented example (docs/examples/
 * route-tokens.json) loading as docs/routes.md describes it.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError, createBff, parseConfig, type BffOptions } from '../../../src/index.ts'
import { loginResources } from '../../../src/core/oidc/grants.ts'
import { read } from '../../docs/markdown.ts'

const options: BffOptions = {
  issuer: 'https://idp.example.com',
  clientId: 'bff-client',
  clientSecret: 'client-secret-value',
  baseUrl: 'https://app.example.com',
  sessionSecret: 'a-session-secret-of-at-least-32-characters!',
}

function problemsOf(routes: unknown[]): readonly string[] {
  try {
    createBff({ ...options, routes } as BffOptions)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  return []
}

const up = 'https://api.internal.example/'

describe('per-route token policies at start-up', () => {
  it('takes `resource` on user routes, `exchange` with a resource, `client` with scopes', () => {
    expect(
      problemsOf([
        { prefix: '/a/', upstream: up, resource: 'https://orders.example' },
        { prefix: '/b/', upstream: up, token: 'user', resource: 'urn:orders' },
        { prefix: '/c/', upstream: up, token: 'exchange', resource: 'urn:ledger' },
        { prefix: '/d/', upstream: up, token: 'client' },
        { prefix: '/e/', upstream: up, token: 'client', scopes: ['r'], resource: 'urn:r' },
      ])
    ).toEqual([])
  })

  it('refuses what a token mode cannot do, naming route and key', () => {
    expect(
      problemsOf([
        { prefix: '/a/', upstream: up, token: 'exchange' },
        { prefix: '/b/', upstream: up, resource: 'https://orders.example/#frag' },
        { prefix: '/c/', upstream: up, resource: 'orders' },
        { prefix: '/d/', upstream: up, token: 'machine' },
      ])
    ).toEqual([
      '"routes[0].resource" is required with token "exchange" (the resource the token is exchanged for)',
      '"routes[1].resource" must be an absolute URI without a fragment',
      '"routes[2].resource" must be an absolute URI without a fragment',
      '"routes[3].token" must be one of user, optional, none, client, exchange',
    ])
  })

  it('asks the login for each resource of a user route, once', () => {
    const config = parseConfig(
      {
        BFF_ISSUER: options.issuer as string,
        BFF_CLIENT_ID: options.clientId,
        BFF_CLIENT_SECRET: options.clientSecret,
        BFF_BASE_URL: options.baseUrl as string,
        BFF_SESSION_SECRET: options.sessionSecret as string,
      },
      {}
    )
    expect(loginResources(config)).toEqual([])
    const withRoutes = { ...config, api: routesOf(read('docs/examples/route-tokens.json')) }
    // The exchange and client routes' resources are not the user's to grant at login.
    expect(loginResources(withRoutes)).toEqual(['https://orders.example'])
  })
})

function routesOf(file: string) {
  return parseConfig(
    {
      BFF_SESSION_SECRET: 'x'.repeat(32),
      BFF_BASE_URL: 'https://app.example.com',
      CORP_CLIENT_SECRET: 'from-the-environment',
    },
    { configFile: file }
  ).api
}

describe('docs/routes.md: the per-route tokens example', () => {
  it('loads with the token each route says', () => {
    const routes = routesOf(read('docs/examples/route-tokens.json'))
    expect(
      routes.map(({ prefix, token, resource, scopes }) => ({ prefix, token, resource, scopes }))
    ).toEqual([
      {
        prefix: '/api/reports/',
        token: 'client',
        resource: 'https://reports.example',
        scopes: ['reports:read'],
      },
      {
        prefix: '/api/orders/',
        token: undefined,
        resource: 'https://orders.example',
        scopes: undefined,
      },
      { prefix: '/api/ledger/', token: 'exchange', resource: 'urn:ledger', scopes: undefined },
      { prefix: '/api/', token: undefined, resource: undefined, scopes: undefined },
    ])
  })
})
