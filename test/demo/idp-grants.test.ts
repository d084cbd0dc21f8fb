/**
 * The demo IdP's grants for per-route tokens, proven with openid-client v6 alone (no BFF code):
 * resource indicators (a refresh-token grant per resource, JWT or opaque tokens with `aud`),
 * client credentials, and the RFC 8693 token exchange registered on it, each refused where it must
 * be.
 */
import * as jose from 'jose'
import * as client from 'openid-client'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import {
  ACCESS_TOKEN_TYPE,
  DEMO_BFF_CLIENT,
  DEMO_USER,
  TOKEN_EXCHANGE,
  bffClientMetadata,
  startIdp,
  type Idp,
} from '../../src/demo/idp.ts'
import { createCookieJar, redirectLocation } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'

const REDIRECT = 'http://127.0.0.1:1/bff/callback'
const ORDERS = 'https://orders.example'
const LEDGER = 'urn:ledger'
const REFUSED = 'https://refused.example'

let idp: Idp
let config: client.Configuration

beforeAll(async () => {
  idp = await startIdp({
    clients: [bffClientMetadata({ redirectUris: [REDIRECT], backchannelLogoutUri: null })],
    resourceServers: { [LEDGER]: { format: 'opaque', scope: 'ledger:read ledger:write' } },
    refusedResources: [REFUSED],
  })
  config = await client.discovery(
    new URL(idp.issuer),
    DEMO_BFF_CLIENT.clientId,
    undefined,
    client.ClientSecretBasic(DEMO_BFF_CLIENT.clientSecret),
    { execute: [client.allowInsecureRequests] }
  )
})
afterAll(() => idp?.stop())
beforeEach(() => idp.resetCounters())

/** A code flow asking for `resources` (RFC 8707) with their scopes; answers the token response. */
async function login(resources: string[], scope = 'openid offline_access api:read ledger:read') {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const params = new URLSearchParams({
    redirect_uri: REDIRECT,
    scope,
    state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  })
  for (const resource of resources) params.append('resource', resource)
  const back = await loginAtIdp(createCookieJar(), client.buildAuthorizationUrl(config, params), {
    ...DEMO_USER,
  })
  return client.authorizationCodeGrant(config, redirectLocation(back)!, {
    pkceCodeVerifier: verifier,
    expectedState: state,
  })
}

const claimsOf = async (token: string) => {
  const jwks = jose.createRemoteJWKSet(new URL(`${idp.issuer}/jwks`))
  return (await jose.jwtVerify(token, jwks, { issuer: idp.issuer })).payload
}

const errorOf = async (promise: Promise<unknown>) => {
  try {
    await promise
  } catch (err) {
    return (err as { error?: string }).error ?? String(err)
  }
  throw new Error('expected a refusal')
}

describe('demo IdP grants', () => {
  it('advertises client credentials and token exchange in discovery', () => {
    expect(config.serverMetadata().grant_types_supported).toEqual(
      expect.arrayContaining(['refresh_token', 'client_credentials', TOKEN_EXCHANGE])
    )
  })

  it('gives a refresh-token grant with `resource` a token for that resource only', async () => {
    const tokens = await login([ORDERS, LEDGER])
    // Without `resource` the access token stays the user's own (opaque, for userinfo).
    expect(tokens.access_token).not.toMatch(/^eyJ/)
    const orders = await client.refreshTokenGrant(config, tokens.refresh_token!, {
      resource: ORDERS,
    })
    expect(await claimsOf(orders.access_token)).toMatchObject({
      aud: ORDERS,
      sub: DEMO_USER.login,
      client_id: DEMO_BFF_CLIENT.clientId,
      scope: 'api:read',
    })
    // Rotation: the grant spent the refresh token; the next one uses the new one.
    expect(orders.refresh_token).not.toBe(tokens.refresh_token)
    const ledger = await client.refreshTokenGrant(config, orders.refresh_token!, {
      resource: LEDGER,
    })
    expect(ledger.access_token).not.toMatch(/^eyJ/) // opaque: introspected
    expect(await client.tokenIntrospection(config, ledger.access_token)).toMatchObject({
      active: true,
      aud: LEDGER,
      sub: DEMO_USER.login,
      scope: 'ledger:read',
    })
    expect(idp.grants).toMatchObject({ resource: 2, refresh: 0 })
    // A resource the login did not ask for is refused.
    expect(
      await errorOf(
        client.refreshTokenGrant(config, ledger.refresh_token!, { resource: 'https://other' })
      )
    ).toBe('invalid_target')
  })

  it('issues client-credentials tokens with the requested scopes and resource', async () => {
    const token = await client.clientCredentialsGrant(config, {
      scope: 'api:read',
      resource: ORDERS,
    })
    const claims = await claimsOf(token.access_token)
    expect(claims).toMatchObject({ aud: ORDERS, client_id: DEMO_BFF_CLIENT.clientId })
    expect(claims.scope).toBe('api:read')
    expect(claims.sub).toBe(DEMO_BFF_CLIENT.clientId)
    expect(idp.grants.clientCredentials).toBe(1)
    expect(
      await errorOf(client.clientCredentialsGrant(config, { scope: 'api:read', resource: REFUSED }))
    ).toBe('invalid_target')
  })

  it('exchanges a user access token for one for a resource (RFC 8693)', async () => {
    const tokens = await login([])
    const exchange = (params: Record<string, string>) =>
      client.genericGrantRequest(config, TOKEN_EXCHANGE, {
        subject_token: tokens.access_token,
        subject_token_type: ACCESS_TOKEN_TYPE,
        ...params,
      })
    const exchanged = await exchange({ resource: ORDERS, scope: 'api:read api:write openid' })
    expect(exchanged.issued_token_type).toBe(ACCESS_TOKEN_TYPE)
    expect(await claimsOf(exchanged.access_token)).toMatchObject({
      aud: ORDERS,
      sub: DEMO_USER.login,
      scope: 'api:read api:write',
      client_id: DEMO_BFF_CLIENT.clientId,
    })
    expect(idp.grants.tokenExchange).toBe(1)
    expect(await errorOf(exchange({ resource: REFUSED }))).toBe('invalid_target')
    expect(await errorOf(exchange({}))).toBe('invalid_target')
    expect(
      await errorOf(
        client.genericGrantRequest(config, TOKEN_EXCHANGE, {
          subject_token: 'not-a-token',
          subject_token_type: ACCESS_TOKEN_TYPE,
          resource: ORDERS,
        })
      )
    ).toBe('invalid_grant')
  })

  it('leaves out the grants it is told not to serve', async () => {
    const plain = await startIdp({
      clients: [bffClientMetadata({ redirectUris: [REDIRECT], backchannelLogoutUri: null })],
      clientCredentials: false,
      tokenExchange: false,
    })
    try {
      const metadata = await (
        await fetch(`${plain.issuer}/.well-known/openid-configuration`)
      ).json()
      expect(metadata.grant_types_supported).toEqual(['authorization_code', 'refresh_token'])
    } finally {
      await plain.stop()
    }
  })
})
