/**
 * The demo IdP's second factor (src/demo/idp-mfa.ts) and the demo API's `/admin`, proven with
 * openid-client alone: `acr_values=mfa` asks for the one-time code after the password (or alone,
 * for a user signed in already), a wrong code asks again, and tokens say how the user signed in.
 */
import * as client from 'openid-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_ACR, startDemoApi, type DemoApi } from '../../src/demo/api.ts'
import { DEMO_API_CLIENT, DEMO_BFF_CLIENT, startIdp, type Idp } from '../../src/demo/idp.ts'
import { MFA_CODE } from '../../src/demo/idp-mfa.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp, parseForm } from '../helpers/idp-login.ts'

const REDIRECT_URI = 'http://127.0.0.1:9/bff/callback'
let idp: Idp
let config: client.Configuration
let api: DemoApi

beforeAll(async () => {
  idp = await startIdp({ redirectUris: [REDIRECT_URI], backchannelLogout: false })
  config = await client.discovery(
    new URL(idp.issuer),
    DEMO_BFF_CLIENT.clientId,
    undefined,
    client.ClientSecretBasic(DEMO_BFF_CLIENT.clientSecret),
    { execute: [client.allowInsecureRequests] }
  )
  api = await startDemoApi({ issuer: idp.issuer, ...DEMO_API_CLIENT })
})
afterAll(async () => {
  await api?.stop()
  await idp?.stop()
})

/** An authorization request as the BFF sends it, and what finishes it with the redirect back. */
async function authorization(params: Record<string, string> = {}) {
  const verifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile offline_access',
    state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    ...params,
  })
  const finish = (back: Response) =>
    client.authorizationCodeGrant(config, redirectLocation(back)!, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      idTokenExpected: true,
    })
  return { url, finish }
}

/** Follows the IdP's redirects to its first page (or a redirect that leaves it). */
async function firstPage(jar: CookieJar, url: URL | string): Promise<Response> {
  let response = await jar.get(url)
  while (redirectLocation(response)?.origin === idp.issuer) response = await jar.follow(response)
  return response
}

/**
 * Submits the page's form with `fields`, follows the IdP's redirects, and grants consent when it
 * asks (a first login of the user): the next page that asks for something, or the way back.
 */
async function submit(jar: CookieJar, page: Response, fields: Record<string, string>) {
  const form = parseForm(await page.text(), page.url)!
  let response = await jar.post(form.action, { form: { ...form.fields, ...fields } })
  for (;;) {
    while (redirectLocation(response)?.origin === idp.issuer) response = await jar.follow(response)
    const next = response.ok ? parseForm(await response.clone().text(), response.url) : undefined
    if (!next || !/\/confirm$/.test(next.action.pathname)) return response
    response = await jar.post(next.action, { form: next.fields })
  }
}

async function introspect(token: string) {
  const apiConfig = await client.discovery(
    new URL(idp.issuer),
    DEMO_API_CLIENT.clientId,
    undefined,
    client.ClientSecretBasic(DEMO_API_CLIENT.clientSecret),
    { execute: [client.allowInsecureRequests] }
  )
  return client.tokenIntrospection(apiConfig, token)
}

describe('demo IdP second factor', () => {
  it('advertises pwd and mfa, and a plain login says pwd', async () => {
    expect(config.serverMetadata().acr_values_supported).toEqual(['pwd', 'mfa'])
    const { url, finish } = await authorization()
    const tokens = await finish(
      await loginAtIdp(createCookieJar(), url, { login: 'ann', password: 'pass' })
    )
    const claims = tokens.claims()!
    expect(claims).toMatchObject({ sub: 'ann', acr: 'pwd', amr: ['pwd'] })
    expect(Math.abs(claims.auth_time! - Date.now() / 1000)).toBeLessThan(30)
    expect(await introspect(tokens.access_token)).toMatchObject({ acr: 'pwd' })
  })

  it('asks for the code after the password; a wrong code asks again; the right one says mfa', async () => {
    const jar = createCookieJar()
    const { url, finish } = await authorization({ acr_values: 'mfa', max_age: '300' })
    const login = await firstPage(jar, url)
    const codePage = await submit(jar, login, { login: 'bea', password: 'pass' })
    expect(codePage.status).toBe(200)
    const html = await codePage.clone().text()
    expect(html).toContain('Two-step verification')
    expect(html).toContain(`<code>${MFA_CODE}</code>`)
    expect(html).toContain('Signed in as <strong>bea</strong>')

    const again = await submit(jar, codePage, { code: '000000' })
    expect(again.status).toBe(200)
    const againHtml = await again.clone().text()
    expect(againHtml).toMatch(/<p class="error" role="alert">That code is not right/)
    expect(parseForm(againHtml, again.url)!.fields).toHaveProperty('code')

    const back = await submit(jar, again, { code: MFA_CODE })
    const tokens = await finish(back)
    const claims = tokens.claims()!
    expect(claims).toMatchObject({ sub: 'bea', acr: 'mfa', amr: ['pwd', 'otp'] })
    expect(Math.abs(claims.auth_time! - Date.now() / 1000)).toBeLessThan(30)
    const introspection = await introspect(tokens.access_token)
    expect(introspection).toMatchObject({ acr: 'mfa', auth_time: claims.auth_time })
    // A refreshed token comes from the same login.
    const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!)
    expect(refreshed.claims()).toMatchObject({ acr: 'mfa' })
    expect(await introspect(refreshed.access_token)).toMatchObject({ acr: 'mfa' })
  })

  it('asks a user signed in with a password for the code alone, once', async () => {
    const jar = createCookieJar()
    const plain = await authorization()
    await plain.finish(await loginAtIdp(jar, plain.url, { login: 'cy', password: 'pass' }))

    const stepUp = await authorization({ acr_values: 'mfa' })
    const page = await firstPage(jar, stepUp.url)
    const form = parseForm(await page.clone().text(), page.url)!
    expect(Object.keys(form.fields)).toContain('code')
    expect(Object.keys(form.fields)).not.toContain('password')
    const tokens = await stepUp.finish(await submit(jar, page, { code: MFA_CODE }))
    expect(tokens.claims()).toMatchObject({ sub: 'cy', acr: 'mfa' })

    // Its IdP session has the second factor now: no page at all.
    const later = await authorization({ acr_values: 'mfa' })
    const back = await firstPage(jar, later.url)
    expect(redirectLocation(back)?.href.startsWith(REDIRECT_URI)).toBe(true)
    expect((await later.finish(back)).claims()).toMatchObject({ sub: 'cy', acr: 'mfa' })
  })

  it('never takes the code in place of the password', async () => {
    const jar = createCookieJar()
    const { url } = await authorization({ acr_values: 'mfa' })
    const login = await firstPage(jar, url)
    const action = parseForm(await login.text(), login.url)!.action.href.replace(/\/login$/, '/mfa')
    const skipped = await jar.post(action, { form: { code: MFA_CODE } })
    expect(skipped.status).toBe(400)
    expect(await skipped.text()).toContain('Sign in with your password first.')
  })

  it('answers a silent request for mfa without it with login_required', async () => {
    const jar = createCookieJar()
    const plain = await authorization()
    await plain.finish(await loginAtIdp(jar, plain.url, { login: 'dan', password: 'pass' }))
    const silent = await authorization({ acr_values: 'mfa', prompt: 'none' })
    const back = redirectLocation(await firstPage(jar, silent.url))!
    expect(back.searchParams.get('error')).toBe('login_required')
  })
})

describe('demo API /admin', () => {
  it('asks for the second factor with an RFC 9470 challenge, and lets an mfa token in', async () => {
    const plain = await authorization()
    const pwd = await plain.finish(
      await loginAtIdp(createCookieJar(), plain.url, { login: 'eve', password: 'pass' })
    )
    const refused = await fetch(`${api.url}/admin`, {
      headers: { authorization: `Bearer ${pwd.access_token}` },
    })
    expect(refused.status).toBe(401)
    expect(refused.headers.get('www-authenticate')).toBe(
      `Bearer error="insufficient_user_authentication", error_description="A second factor is required", acr_values="${ADMIN_ACR}"`
    )
    expect(await refused.json()).toMatchObject({ error: 'insufficient_user_authentication' })

    const stepUp = await authorization({ acr_values: 'mfa' })
    const mfa = await stepUp.finish(
      await loginAtIdp(createCookieJar(), stepUp.url, {
        login: 'eve',
        password: 'pass',
        code: MFA_CODE,
      })
    )
    const admin = await fetch(`${api.url}/admin`, {
      headers: { authorization: `Bearer ${mfa.access_token}` },
    })
    expect(admin.status).toBe(200)
    expect(await admin.json()).toMatchObject({ sub: 'eve', acr: 'mfa' })
    expect((await fetch(`${api.url}/admin`, { method: 'POST' })).status).toBe(405)
  })
})
