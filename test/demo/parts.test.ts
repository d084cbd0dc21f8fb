/**
 * The demo's parts (src/demo/parts.ts) with openid-client alone, no BFF: two IdPs whose accounts
 * carry their roles in different shapes, the config file that maps both to `roles`, and the demo
 * API that takes either IdP's tokens. The BFF's side of it runs in test/adapters/node/server.test.ts
 * (npm start) and e2e/idps.spec.ts (Chromium).
 */
import * as client from 'openid-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_USER } from '../../src/demo/idp.ts'
import {
  DEMO_ADMIN_ROLE,
  DEMO_IDPS,
  startDemoParts,
  type DemoIdp,
  type DemoParts,
} from '../../src/demo/parts.ts'
import { claimAt } from '../../src/core/policy/claims.ts'
import { optionsFromEnv } from '../../src/core/config/env.ts'
import { createCookieJar, redirectLocation } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'

// Nothing listens here: the IdPs redirect to it, and the tests read the redirect without following.
const BASE_URL = 'http://localhost:3999'

interface ConfigFile {
  idps: Record<
    string,
    { issuer: string; clientId: string; label: string; claims: Record<string, string> }
  >
  routes: Array<{ prefix: string; upstream: string; require?: Record<string, string> }>
}

function discover(demoIdp: DemoIdp) {
  return client.discovery(
    new URL(demoIdp.idp.issuer),
    demoIdp.clientId,
    undefined,
    client.ClientSecretBasic(demoIdp.clientSecret),
    { execute: [client.allowInsecureRequests] }
  )
}

/** demo/demo through the IdP's pages, as the BFF runs the code flow, to `redirectUri`. */
async function logIn(demoIdp: DemoIdp, redirectUri: string) {
  const config = await discover(demoIdp)
  const verifier = client.randomPKCECodeVerifier()
  const nonce = client.randomNonce()
  const authorizeUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile email offline_access',
    nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  })
  const back = redirectLocation(await loginAtIdp(createCookieJar(), authorizeUrl, DEMO_USER))!
  expect(back.href.startsWith(`${redirectUri}?`)).toBe(true)
  const tokens = await client.authorizationCodeGrant(config, back, {
    pkceCodeVerifier: verifier,
    expectedNonce: nonce,
    idTokenExpected: true,
  })
  const userinfo = await client.fetchUserInfo(config, tokens.access_token, DEMO_USER.login)
  return { config, tokens, idToken: tokens.claims()!, userinfo }
}

describe('the demo with its config file: two IdPs', () => {
  let demo: DemoParts
  let file: ConfigFile

  beforeAll(async () => {
    demo = await startDemoParts(BASE_URL)
    file = JSON.parse(demo.configFile!) as ConfigFile
  })
  afterAll(() => demo?.stop())

  it('names both IdPs in the file, Corp first, and leaves the env IdP settings unset', () => {
    expect(demo.idps.map(({ name, label }) => ({ name, label }))).toEqual([
      { name: 'corp', label: 'Corp' },
      { name: 'partner', label: 'Partner' },
    ])
    expect(Object.keys(file.idps)).toEqual(['corp', 'partner'])
    for (const { name, label, idp, clientId } of demo.idps) {
      expect(file.idps[name]).toMatchObject({ issuer: idp.issuer, clientId, label })
    }
    expect(file.idps.corp!.claims).toEqual({ roles: 'realm_access.roles' })
    expect(file.idps.partner!.claims).toEqual({ roles: 'groups' })
    expect(new Set(demo.idps.map(({ idp }) => idp.issuer)).size).toBe(2)
    // A file's idps and these settings together are a configuration error.
    expect(Object.keys(demo.settings)).not.toEqual(
      expect.arrayContaining([expect.stringMatching(/^BFF_(ISSUER|CLIENT_ID|CLIENT_SECRET|API)$/)])
    )
    expect(file.routes.find((r) => r.prefix === '/api/admin/')?.require).toEqual({
      roles: DEMO_ADMIN_ROLE,
    })
  })

  it('registers the BFF at each IdP with the callback and back-channel URIs the BFF uses for it', () => {
    // The BFF's own reading of the settings and the file, as npm start hands them over.
    const config = optionsFromEnv(demo.settings, { configFile: demo.configFile })
    expect(config.idps.map(({ name, label }) => ({ name, label }))).toEqual([
      { name: 'corp', label: 'Corp' },
      { name: 'partner', label: 'Partner' },
    ])
    for (const { name, idp, clientId } of demo.idps) {
      const bff = idp.clients.find((c) => c.client_id === clientId)
      const resolved = config.idps.find((c) => c.name === name)!
      expect(resolved.callbackPath).toBe(`/bff/callback/${name}`)
      expect(bff).toMatchObject({
        redirect_uris: [`${BASE_URL}${resolved.callbackPath}`],
        backchannel_logout_uri: `${BASE_URL}${resolved.backchannelPath}`,
      })
    }
  })

  for (const spec of DEMO_IDPS) {
    it(`${spec.name}: demo/demo's ID token and userinfo carry the roles in its shape, which the file maps to roles`, async () => {
      const demoIdp = demo.idps.find(({ name }) => name === spec.name)!
      const { idToken, userinfo } = await logIn(demoIdp, `${BASE_URL}/bff/callback/${spec.name}`)
      expect(idToken).toMatchObject({ iss: demoIdp.idp.issuer, sub: 'demo', ...spec.accountClaims })
      expect(userinfo).toMatchObject({ sub: 'demo', ...spec.accountClaims })
      // Each IdP has its own shape only: the mapping is what makes them one.
      expect(idToken).not.toHaveProperty('roles')
      const other = DEMO_IDPS.find(({ name }) => name !== spec.name)!
      for (const claim of Object.keys(other.accountClaims))
        expect(idToken).not.toHaveProperty(claim)
      const path = file.idps[spec.name]!.claims.roles!
      expect(claimAt(idToken, path)).toEqual([DEMO_ADMIN_ROLE])
      expect(claimAt(userinfo, path)).toEqual([DEMO_ADMIN_ROLE])
    })
  }

  it('refuses a redirect URI of the other IdP (each IdP knows only its own callback)', async () => {
    const [corp] = demo.idps
    await expect(logIn(corp!, `${BASE_URL}/bff/callback/partner`)).rejects.toThrow(/redirect_uri/)
  })

  it('the demo API takes either IdP’s access token, says which IdP vouched, and refuses others', async () => {
    const api = file.routes.find((r) => r.prefix === '/api/')!.upstream
    const hello = (token: string) =>
      fetch(new URL('hello', api), { headers: { authorization: `Bearer ${token}` } })
    for (const demoIdp of demo.idps) {
      const { config, tokens } = await logIn(demoIdp, `${BASE_URL}/bff/callback/${demoIdp.name}`)
      const answer = await hello(tokens.access_token)
      expect(answer.status).toBe(200)
      expect(await answer.json()).toMatchObject({ sub: 'demo', iss: demoIdp.idp.issuer })
      // Revoked at its IdP: the other IdP does not know it either, so it is refused.
      await client.tokenRevocation(config, tokens.refresh_token!)
      expect((await hello(tokens.access_token)).status).toBe(401)
    }
    expect((await hello('made-up-token')).status).toBe(401)
  })
})

describe('the demo with BFF_API given: one IdP from the settings', () => {
  let demo: DemoParts

  beforeAll(async () => {
    demo = await startDemoParts(BASE_URL, { BFF_API: '/api/=http://127.0.0.1:9/' })
  })
  afterAll(() => demo?.stop())

  it('has no config file and keeps the env-only paths and the plain roles claim', async () => {
    expect(demo.configFile).toBeUndefined()
    expect(demo.idps).toHaveLength(1)
    const [only] = demo.idps
    expect(demo.settings).toMatchObject({
      BFF_ISSUER: only!.idp.issuer,
      BFF_CLIENT_ID: only!.clientId,
      BFF_CLIENT_SECRET: only!.clientSecret,
      BFF_API: '/api/=http://127.0.0.1:9/',
    })
    const [resolved] = optionsFromEnv(demo.settings).idps
    expect(resolved).toMatchObject({ name: 'default', callbackPath: '/bff/callback' })
    expect(only!.idp.clients[0]).toMatchObject({
      redirect_uris: [`${BASE_URL}/bff/callback`],
      backchannel_logout_uri: `${BASE_URL}${resolved!.backchannelPath}`,
    })
    const { idToken } = await logIn(only!, `${BASE_URL}/bff/callback`)
    expect(idToken.roles).toEqual([DEMO_ADMIN_ROLE])
  })
})
