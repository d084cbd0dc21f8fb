/**
 * IdP outages. While the IdP is away during a needed refresh, the API answers 503 `idp_unavailable`
 * and the session is kept; a still-valid access token keeps being used; once the IdP is back, a
 * call refreshes and succeeds. A login while the IdP is away gets a readable error page (HTML for a
 * browser, JSON otherwise), never a 500.
 *
 * The IdP is the real oidc-provider; "away" is decided per request by the BFF's IdP fetch (the
 * `deps.fetch` hook), which then sends the same request to a port that refuses connections, to a
 * server answering 503 like a load balancer with no healthy backend, or to one that accepts and
 * never answers. The browser side (the test's own requests to the IdP) is unaffected.
 */
import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp, type Idp } from '../../src/demo/idp.ts'
import { startNode, type NodeServer } from '../../src/adapters/node/server.ts'
import { captureLog } from '../helpers/capture-log.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { freePort, startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

type Outage = 'refused' | 'failing' | 'hung' | 'lost'
const CSRF = { 'x-csrf': '1' }
const ACCESS_TOKEN_TTL = 60

let idp: Idp
let upstream: RecordingUpstream
let failing: Server
let hung: Server
let refusedPort: number
let outage: Outage | null = null
let offsetMs = 0
const logs = captureLog()
const servers: NodeServer[] = []
const redirectUris: string[] = []
let bff: NodeServer

/** The BFF's fetch to the IdP: the real one, or the same request sent where the outage is. */
const idpFetch: typeof fetch = (input, init) => {
  if (!outage) return fetch(input, init)
  // workerd's fetch rejects a lost connection with a plain Error, not Node's TypeError.
  if (outage === 'lost') return Promise.reject(new Error('Network connection lost.'))
  const url = new URL(input instanceof Request ? input.url : String(input))
  const port = { refused: refusedPort, failing: portOf(failing), hung: portOf(hung) }[outage]
  url.host = `127.0.0.1:${port}`
  return fetch(url, init)
}

function portOf(server: Server): number {
  return (server.address() as AddressInfo).port
}

async function startBff(): Promise<NodeServer> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // One `bff` client at the IdP for every BFF of this file (registering replaces it).
  redirectUris.push(`${url}/bff/callback`)
  await idp.addClient(bffClientMetadata({ redirectUris }))
  const server = await startNode(
    {
      PORT: String(port),
      BFF_ISSUER: idp.issuer,
      BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
      BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
      BFF_BASE_URL: url,
      BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
      BFF_SESSION_STORE: 'memory',
      BFF_API: `/api/=${upstream.url}/`,
      BFF_IDP_TIMEOUT: '1', // a hung IdP costs a second per attempt, not ten
    },
    {
      serveStatic: false,
      deps: { log: logs.log, fetch: idpFetch, now: () => Date.now() + offsetMs },
    }
  )
  servers.push(server)
  return server
}

beforeAll(async () => {
  idp = await startIdp({ accessTokenTtl: ACCESS_TOKEN_TTL, clients: [] })
  upstream = await startRecordingUpstream()
  failing = createServer((_req, res) => {
    res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>503 Service Unavailable</h1>')
  })
  hung = createServer(() => {})
  for (const server of [failing, hung]) {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  }
  refusedPort = await freePort()
  bff = await startBff()
})

afterAll(async () => {
  for (const server of servers) await server.close()
  for (const server of [failing, hung]) {
    server.closeAllConnections()
    server.close()
  }
  await upstream?.close()
  await idp?.stop()
})

const advance = (seconds: number) => {
  offsetMs += seconds * 1000
}

async function login(server: NodeServer, user: string): Promise<CookieJar> {
  const jar = createCookieJar({ baseUrl: server.url })
  const start = await jar.get('/bff/login?returnTo=/')
  expect(start.status).toBe(302)
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, { login: user, password: 'pass' })
  const done = await jar.follow(atIdp)
  expect(done.status).toBe(302)
  return jar
}

/** The bearer token the upstream saw on the last proxied call. */
const lastBearer = () => upstream.requests.at(-1)?.headers.authorization

describe('a needed refresh while the IdP is away', () => {
  it.each<[Outage, number[], string[]]>([
    ['refused', [503], ['idp_unavailable']],
    ['failing', [503], ['idp_unavailable']],
    ['hung', [503, 504], ['idp_unavailable', 'idp_timeout']],
    ['lost', [503], ['idp_unavailable']],
  ])(
    'IdP %s: 503 with the session kept, and a refresh that succeeds once it is back',
    async (mode, statuses, codes) => {
      const jar = await login(bff, `idp-${mode}`)
      expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
      const before = lastBearer()
      const refreshes = idp.grants.refresh

      outage = mode
      try {
        advance(ACCESS_TOKEN_TTL + 60) // the access token has expired: only a refresh helps
        for (let call = 0; call < 2; call++) {
          const response = await jar.get('/api/x', { headers: CSRF })
          expect(statuses, `call ${call}`).toContain(response.status)
          expect(codes).toContain((await response.json()).error)
          // The session cookie is kept: at most sent again with the slid idle expiry, never cleared.
          const cleared = jar.lastSetCookies.filter((line) => /^bff=(;|.*Max-Age=0)/.test(line))
          expect(cleared, 'the session cookie is kept').toEqual([])
        }
        // The session is kept: the user is still logged in, only the API waits for the IdP.
        const user = await jar.get('/bff/user', { headers: CSRF })
        expect(user.status).toBe(200)
        expect((await user.json()).sub).toBe(`idp-${mode}`)
      } finally {
        outage = null
      }

      // Back: after the short pause the token manager keeps after a failure, a call refreshes.
      advance(6)
      const back = await jar.get('/api/x', { headers: CSRF })
      expect(back.status).toBe(200)
      expect(lastBearer()).not.toBe(before)
      expect(idp.grants.refresh).toBe(refreshes + 1)
      expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
      expect(idp.grants.refresh).toBe(refreshes + 1) // the new token is fresh: no second grant
    },
    30_000
  )

  it('keeps using an access token that is due for refresh but still valid', async () => {
    const jar = await login(bff, 'idp-still-valid')
    expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
    const token = lastBearer()
    outage = 'refused'
    try {
      advance(ACCESS_TOKEN_TTL - 20) // within the 30 s refresh skew, 20 s before expiry
      const response = await jar.get('/api/x', { headers: CSRF })
      expect(response.status).toBe(200)
      expect(lastBearer()).toBe(token)
    } finally {
      outage = null
    }
  })

  it('logs the outage without a token or the client secret', async () => {
    const secrets = [DEMO_BFF_CLIENT.clientSecret]
    const jar = await login(bff, 'idp-logged')
    const before = logs.lines.length
    outage = 'refused'
    try {
      advance(ACCESS_TOKEN_TTL + 60)
      expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(503)
    } finally {
      outage = null
    }
    const lines = logs.lines.slice(before)
    expect(lines.some((line) => line.includes('idp_unavailable'))).toBe(true)
    for (const secret of [...secrets, lastBearer()!.slice('Bearer '.length)]) {
      expect(lines.join('\n')).not.toContain(secret)
    }
  })
})

describe('a login while the IdP is away', () => {
  it('answers a readable page to a browser and JSON to others, never a 500', async () => {
    // Away from the start: the start-up discovery fails too, so the login needs the IdP at once.
    outage = 'refused'
    const fresh = await startBff()
    try {
      const page = await fetch(`${fresh.url}/bff/login?returnTo=/`, {
        headers: { accept: 'text/html,application/xhtml+xml' },
        redirect: 'manual',
      })
      expect(page.status).toBe(503)
      expect(page.headers.get('content-type')).toMatch(/^text\/html/)
      const html = await page.text()
      expect(html).toMatch(/<h1>[^<]+<\/h1>/)
      expect(html).toMatch(/identity provider/i)

      const json = await fetch(`${fresh.url}/bff/login?returnTo=/`, { redirect: 'manual' })
      expect(json.status).toBe(503)
      expect(await json.json()).toMatchObject({ error: 'idp_unavailable' })
    } finally {
      outage = null
    }
    // Discovery failures are not cached: with the IdP back, the same BFF logs in.
    const jar = await login(fresh, 'idp-login-back')
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
  })

  it('answers a readable page when the IdP goes away between its login page and the callback', async () => {
    const jar = createCookieJar({ baseUrl: bff.url })
    const start = await jar.get('/bff/login?returnTo=/')
    const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
      login: 'idp-callback',
      password: 'pass',
    })
    outage = 'failing'
    try {
      const callback = await jar.get(redirectLocation(atIdp)!, { headers: { accept: 'text/html' } })
      expect(callback.status).toBe(503)
      expect(callback.headers.get('content-type')).toMatch(/^text\/html/)
      expect(await callback.text()).toMatch(/<h1>/)
      expect(jar.lastSetCookies.some((line) => /^bff=[^;]+/.test(line))).toBe(false)
    } finally {
      outage = null
    }
  })
})
