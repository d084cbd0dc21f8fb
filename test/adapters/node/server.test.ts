/**
 * The Node entry as an operator meets it: a real process, started the way README says.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createCookieJar, redirectLocation } from '../../helpers/http.ts'
import { loginAtIdp } from '../../helpers/idp-login.ts'
import { freePort } from '../../helpers/upstream.ts'
import { rawRequest } from '../../helpers/raw-http.ts'
import { captureLog } from '../../helpers/capture-log.ts'
import { startNode } from '../../../src/adapters/node/server.ts'
import { DEMO_SPA_DIR } from '../../../src/adapters/node/static.ts'
import { MFA_CODE } from '../../../src/demo/idp-mfa.ts'
import { accessTokenOf } from '../../helpers/session-cookie.ts'

// Each test starts a process (tsx compiles the sources first) or a server: seconds on an idle
// machine, many more on two busy cores. A generous limit, so only a hang fails them.
vi.setConfig({ testTimeout: 120_000 })

const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGTERM')
})

function start(env: Record<string, string>, entry = 'src/adapters/node/server.ts') {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (stdout += d))
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  const output = async (pattern: RegExp, ms = 90_000) => {
    const until = Date.now() + ms
    while (!pattern.test(stdout) && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    return stdout
  }
  return { exited, output, stderr: () => stderr }
}

/** Production settings for an in-process server; the IdP is never reached (no network here). */
const PRODUCTION = {
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'client',
  BFF_CLIENT_SECRET: 'client-secret',
  BFF_SESSION_SECRET: 'a'.repeat(32),
  PORT: '0',
}

describe('start-up settings', () => {
  it('stops with one line per bad setting, naming it, and never echoes a secret', async () => {
    const secret = 'too-short-secret-value'
    const proc = start({
      BFF_ISSUER: 'https://idp.example.com',
      BFF_SESSION_SECRET: secret,
      BFF_SESSION_STORE: 'floppy',
    })
    expect(await proc.exited).toBe(1)
    const lines = proc.stderr().trim().split('\n')
    expect(lines).toContain(
      'bff: invalid setting: BFF_CLIENT_ID is required: the client id registered at the IdP'
    )
    expect(lines.some((l) => l.startsWith('bff: invalid setting: BFF_SESSION_SECRET'))).toBe(true)
    expect(lines.some((l) => l.startsWith('bff: invalid setting: BFF_SESSION_STORE'))).toBe(true)
    expect(lines.length).toBe(4) // client id, client secret, session secret, store
    expect(proc.stderr()).not.toContain(secret)
  })
})

describe('start-up settings, with a bad PORT', () => {
  it('names the port among the other bad settings, not alone', async () => {
    const proc = start({
      PORT: 'abc',
      BFF_ISSUER: 'ftp://idp.example.com',
      BFF_CLIENT_ID: 'client',
      BFF_CLIENT_SECRET: 'client-secret',
      BFF_SESSION_SECRET: 'short',
    })
    expect(await proc.exited).toBe(1)
    const lines = proc.stderr().trim().split('\n')
    expect(lines).toContain('bff: invalid setting: PORT must be a port number, got "abc"')
    expect(lines.some((l) => l.startsWith('bff: invalid setting: BFF_ISSUER'))).toBe(true)
    expect(lines.some((l) => l.startsWith('bff: invalid setting: BFF_SESSION_SECRET'))).toBe(true)
    expect(lines).toHaveLength(3)
  })
})

describe('the package command (bff-session-broker, cli.ts)', () => {
  it('never starts the demo: without BFF_ISSUER it names the setting and exits 1', async () => {
    const port = await freePort()
    const proc = start({ PORT: String(port) }, 'src/adapters/node/cli.ts')
    expect(await proc.exited).toBe(1)
    expect(proc.stderr().trim().split('\n')).toEqual([
      'bff: invalid setting: BFF_ISSUER (or BFF_CONFIG) must name your OpenID Provider (the demo starts only from a clone: npm start)',
    ])
    expect(await proc.output(/./, 0)).toBe('')
    // Nothing listens: no demo IdP or BFF came up on the port.
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow()
  })

  it('starts the production server with BFF_ISSUER', async () => {
    const proc = start({ ...PRODUCTION, BFF_IDP_TIMEOUT: '1' }, 'src/adapters/node/cli.ts')
    const out = await proc.output(/Open http/)
    expect(out).toMatch(/^BFF listening on http:\/\/127\.0\.0\.1:\d+\n/)
    expect(out).not.toContain('Demo')
  })
})

describe('npm start without BFF_ISSUER: the demo', () => {
  it('runs two IdPs, the API and the BFF in one process; demo/demo can log in (at either IdP) and call the API, no demo endpoint hands the token to the page, and the admin area asks for a second factor', async () => {
    const port = await freePort()
    // Given, so the test can open the session cookie and learn the access token to look for.
    const secret = randomBytes(32).toString('base64url')
    const proc = start({ PORT: String(port), BFF_SESSION_SECRET: secret })
    const out = await proc.output(/Open http/)
    // The URL to open is the last line of start-up output.
    expect(out.trim().split('\n').at(-1)).toBe(`Open http://localhost:${port}`)

    const origin = `http://localhost:${port}`
    const jar = createCookieJar({ baseUrl: origin })
    const page = await jar.get('/')
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('BFF session broker demo')
    // The demo's SPA is whole: no 404 for the icon a browser asks for by itself.
    const icon = await jar.get('/favicon.ico')
    expect([icon.status, icon.headers.get('content-type')]).toEqual([200, 'image/x-icon'])

    const login = await jar.get('/bff/login?returnTo=/')
    const atIdp = await loginAtIdp(jar, redirectLocation(login)!, {
      login: 'demo',
      password: 'demo',
    })
    const back = await jar.follow(atIdp)
    expect(back.status).toBe(302)
    const hello = await jar.get('/api/hello', { headers: { 'x-csrf': '1' } })
    expect(hello.status).toBe(200)
    expect(await hello.json()).toMatchObject({ sub: 'demo' })

    // Every demo endpoint, every way the demo API answers: none may carry the token or a piece of it.
    const token = await accessTokenOf(jar, origin, secret)
    const pieces = Array.from({ length: token.length - 11 }, (_, i) => token.slice(i, i + 12))
    const calls: Array<[string, string, number]> = [
      ['GET', '/api/hello', 200],
      ['GET', '/api/echo', 200],
      ['GET', '/api/echo/deep/path?q=1', 200],
      ['POST', '/api/echo', 200],
      ['PUT', '/api/echo/item', 200],
      ['PATCH', '/api/echo', 200],
      ['DELETE', '/api/echo/item', 200],
      ['POST', '/api/hello', 405],
      ['GET', '/api/no-such-endpoint', 404],
    ]
    for (const [method, path, status] of calls) {
      const response = await jar.request(method, path, {
        headers: { 'x-csrf': '1' },
        ...(method === 'GET' || method === 'DELETE' ? {} : { json: { note: 'hi' } }),
      })
      expect(response.status, `${method} ${path}`).toBe(status)
      const seen = `${[...response.headers].join('\n')}\n${await response.text()}`
      // A boolean, so a failure does not print the token it found.
      const leaked = pieces.some((piece) => seen.includes(piece))
      expect(leaked, `${method} ${path} shows (part of) the access token`).toBe(false)
    }
    // /echo says a valid token arrived and whose it is, instead of showing it.
    const echo = await (await jar.get('/api/echo', { headers: { 'x-csrf': '1' } })).json()
    expect(echo.headers.authorization).toBeUndefined()
    expect(echo.token).toMatchObject({ scheme: 'Bearer', active: true, sub: 'demo' })

    // The admin area's route asks for acr "mfa" (the demo's config file): the BFF itself answers
    // step_up_required, and the step-up login with the one-time code gets through.
    const admin = await jar.get('/api/admin/', { headers: { 'x-csrf': '1' } })
    expect(admin.status).toBe(401)
    const { acr, loginUrl } = await admin.json()
    expect(acr).toEqual(['mfa'])
    expect(await proc.output(/"policy\.denied".*"route":"\/api\/admin\/"/)).toMatch(
      /"reason":"step_up_required"/
    )
    const stepUp = await loginAtIdp(jar, redirectLocation(await jar.get(loginUrl))!, {
      login: 'demo',
      password: 'demo',
      code: MFA_CODE,
    })
    expect((await jar.follow(stepUp)).status).toBe(302)
    const allowed = await jar.get('/api/admin/', { headers: { 'x-csrf': '1' } })
    expect([allowed.status, (await allowed.json()).acr]).toEqual([200, 'mfa'])

    // The service route sends the BFF's own client-credentials token: no user in it, no session
    // needed.
    const service = await fetch(`${origin}/api/service/hello`, { headers: { 'x-csrf': '1' } })
    expect(service.status).toBe(200)
    expect(await service.json()).toMatchObject({ message: 'Hello, client!' })

    // The public catalogue: no session, and no token reaches the API even when the browser
    // sends an Authorization header of its own.
    const catalog = await fetch(`${origin}/api/catalog/`, {
      headers: { 'x-csrf': '1', authorization: 'Bearer from-the-page' },
    })
    expect(catalog.status).toBe(200)
    expect(await catalog.json()).toMatchObject({ withToken: false, items: expect.any(Array) })
    // The admin route also requires the admin role, which every demo account has: at Corp, the
    // default IdP, in realm_access.roles, mapped to roles.
    const user = await (await jar.get('/bff/user', { headers: { 'x-csrf': '1' } })).json()
    expect([user.idp, user.claims.roles]).toEqual(['corp', ['admin']])

    // Two IdPs to choose from; Partner keeps its roles in groups, and they come out as roles too.
    const idps = await (await fetch(`${origin}/bff/idps`)).json()
    expect(idps).toEqual([
      { name: 'corp', label: 'Corp' },
      { name: 'partner', label: 'Partner' },
    ])
    const partnerJar = createCookieJar({ baseUrl: origin })
    const partnerLogin = redirectLocation(await partnerJar.get('/bff/login?idp=partner'))!
    const corpIssuer = new URL(redirectLocation(login)!).origin
    expect(partnerLogin.origin).not.toBe(corpIssuer)
    const atPartner = await loginAtIdp(partnerJar, partnerLogin, {
      login: 'demo',
      password: 'demo',
    })
    expect(redirectLocation(atPartner)?.pathname).toBe('/bff/callback/partner')
    expect((await partnerJar.follow(atPartner)).status).toBe(302)
    const partnerUser = await (
      await partnerJar.get('/bff/user', { headers: { 'x-csrf': '1' } })
    ).json()
    expect([partnerUser.idp, partnerUser.claims.roles]).toEqual(['partner', ['admin']])
    expect(partnerUser.claims).not.toHaveProperty('realm_access')
    const partnerHello = await partnerJar.get('/api/hello', { headers: { 'x-csrf': '1' } })
    expect(await partnerHello.json()).toMatchObject({ sub: 'demo', iss: partnerLogin.origin })
  })
})

describe('npm start with BFF_DEMO_PROFILE=fapi2: the demo in the FAPI 2.0 profile', () => {
  it('logs demo/demo in with PAR, calls the API with DPoP-bound tokens (user and client), proofs checked', async () => {
    const port = await freePort()
    const secret = randomBytes(32).toString('base64url')
    const proc = start({
      PORT: String(port),
      BFF_SESSION_SECRET: secret,
      BFF_DEMO_PROFILE: 'fapi2',
    })
    expect(await proc.output(/Open http/)).toContain('Demo running in profile fapi2')
    const origin = `http://localhost:${port}`
    const jar = createCookieJar({ baseUrl: origin })
    // PAR: the browser carries only client_id and request_uri to the IdP.
    const authorize = redirectLocation(await jar.get('/bff/login?returnTo=/'))!
    expect([...authorize.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri'])
    const atIdp = await loginAtIdp(jar, authorize, { login: 'demo', password: 'demo' })
    expect((await jar.follow(atIdp)).status).toBe(302)
    const hello = await jar.get('/api/hello', { headers: { 'x-csrf': '1' } })
    expect([hello.status, (await hello.json()).sub]).toEqual([200, 'demo'])
    // The API saw a DPoP-bound token with a proof of the session's key, and said so.
    const echo = await (await jar.get('/api/echo', { headers: { 'x-csrf': '1' } })).json()
    expect(echo.token).toMatchObject({ scheme: 'DPoP', active: true, sub: 'demo' })
    expect(echo.headers.dpop).toBeUndefined()
    const post = await jar.request('POST', '/api/echo', {
      headers: { 'x-csrf': '1' },
      json: { note: 'hi' },
    })
    expect([post.status, (await post.json()).body]).toEqual([200, '{"note":"hi"}'])
    // The service route: the BFF's own client-credentials token, DPoP-bound as well.
    const service = await fetch(`${origin}/api/service/echo`, { headers: { 'x-csrf': '1' } })
    expect(service.status).toBe(200)
    expect((await service.json()).token).toMatchObject({ scheme: 'DPoP', active: true })
    // The token out of the session cookie, without the key: the API refuses it.
    const token = await accessTokenOf(jar, origin, secret)
    const api = `http://${echo.headers.host}`
    for (const authorization of [`Bearer ${token}`, `DPoP ${token}`]) {
      const stolen = await fetch(`${api}/hello`, { headers: { authorization } })
      expect(stolen.status).toBe(401)
    }
  })
})

describe('startNode with the demo SPA: an address nothing serves', () => {
  it('answers after the static files: 404 not_found JSON, or the page with its own strict CSP', async () => {
    const server = await startNode(PRODUCTION, { spaDir: DEMO_SPA_DIR, deps: { log: () => {} } })
    try {
      const app = await fetch(`${server.url}/app.js`)
      expect(app.status).toBe(200)
      expect(app.headers.get('content-security-policy')).toMatch(/^default-src 'self'/)

      const missing = await fetch(`${server.url}/no-such-file.js`)
      expect(missing.status).toBe(404)
      expect(await missing.json()).toEqual({
        error: 'not_found',
        message: 'Nothing is at this address.',
      })

      const page = await fetch(`${server.url}/no/such/page`, { headers: { accept: 'text/html' } })
      expect(page.status).toBe(404)
      expect(await page.text()).toContain('<title>Not found</title>')
      // The page's CSP allows its inline style by hash; the SPA's would block it.
      expect(page.headers.get('content-security-policy')).toMatch(
        /^default-src 'none'; style-src 'sha256-/
      )
      expect(page.headers.get('x-frame-options')).toBe('DENY')
    } finally {
      await server.close()
    }
  })
})

describe('startNode: the store the settings name', () => {
  it('BFF_SESSION_STORE=memory stays the memory store when BFF_REDIS_URL is set too', async () => {
    // A shared environment often sets BFF_REDIS_URL for every instance; memory must not quietly
    // turn into cookie sessions (with Redis for large ones) because of it.
    const server = await startNode(
      { ...PRODUCTION, BFF_SESSION_STORE: 'memory', BFF_REDIS_URL: 'redis://127.0.0.1:6379' },
      { serveStatic: false, deps: { log: () => {} } }
    )
    try {
      const health = await fetch(`${server.url}/bff/health`)
      // (503: idp.example.com cannot be discovered; the store is what this test is about.)
      expect(await health.json()).toMatchObject({ store: 'memory' })
    } finally {
      await server.close()
    }
  })
})

describe('startNode: the Host header as clients spell it', () => {
  it('takes a host name in capitals, which node-server once refused with an empty 400', async () => {
    const server = await startNode(PRODUCTION, { serveStatic: false, deps: { log: () => {} } })
    try {
      const { port } = new URL(server.url)
      // Host names are case-insensitive; curl sends `http://LOCALHOST:3000/` as typed.
      for (const host of [`LOCALHOST:${port}`, `LocalHost:${port}`, `127.0.0.1:${port}`]) {
        const answer = await rawRequest(Number(port), {
          method: 'GET',
          target: '/bff/user',
          headers: [
            ['host', host],
            ['x-csrf', '1'],
          ],
        })
        expect([host, answer.status, answer.body]).toEqual([
          host,
          401,
          '{"error":"unauthenticated","message":"Not logged in."}',
        ])
      }
    } finally {
      await server.close()
    }
  })
})

describe('closing the server', () => {
  it('stops the IdP discovery retries at once, even with a kept-alive connection open', async () => {
    const { log, containing } = captureLog()
    // Nothing listens on port 9: discovery fails and is retried after 1 s, 2 s, …
    const server = await startNode(
      {
        ...PRODUCTION,
        BFF_ISSUER: 'http://127.0.0.1:9',
        BFF_BASE_URL: 'http://localhost:3000',
        BFF_SPA_DIR: 'public',
      },
      { deps: { log } }
    )
    // An idle kept-alive connection (fetch keeps it for seconds) must not delay the close.
    const page = await fetch(`${server.url}/`)
    expect(page.status).toBe(200) // the body is left unread, as a hurried client does
    const retries = containing('oidc.discovery_retry').length
    await server.close()
    await new Promise((resolve) => setTimeout(resolve, 2500))
    expect(containing('oidc.discovery_retry')).toHaveLength(retries)
  })
})

describe('requests Node’s HTTP parser refuses', () => {
  it('answer JSON like every other refusal, not Node’s empty 400 and 431', async () => {
    const server = await startNode(PRODUCTION)
    try {
      const { port } = new URL(server.url)
      const send = (headers: Array<[string, string]>) =>
        rawRequest(Number(port), { method: 'GET', target: '/bff/user', headers })
      const cases: Array<[Array<[string, string]>, number, string]> = [
        [
          [
            ['host', `127.0.0.1:${port}`],
            ['bad header', 'x'],
          ],
          400,
          'invalid_request',
        ],
        [
          [
            ['host', `127.0.0.1:${port}`],
            ['x-a', 'b\u0001c'],
          ],
          400,
          'invalid_request',
        ],
        [
          [
            ['host', `127.0.0.1:${port}`],
            ['x-big', 'a'.repeat(20_000)],
          ],
          431,
          'headers_too_large',
        ],
      ]
      for (const [headers, status, error] of cases) {
        const answer = await send(headers)
        expect([answer.status, answer.header('content-type')]).toEqual([status, 'application/json'])
        expect(JSON.parse(answer.body)).toMatchObject({ error })
      }
      // The server still answers afterwards.
      expect((await fetch(`${server.url}/bff/health`)).status).toBeLessThan(600)
    } finally {
      await server.close()
    }
  })
})
