/**
 * The demo API's live routes (src/demo/api-live.ts): the WebSocket feed and the SSE ticker, first
 * straight at the API with a real IdP's tokens, then through the BFF as `npm start` wires them (the
 * config file's `/live/` route), in the FAPI 2.0 profile so the upgrade carries a DPoP-bound token
 * and its proof.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import * as client from 'openid-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { startNode, type NodeServer } from '../../src/adapters/node/start.ts'
import { optionsFromEnv } from '../../src/core/config/env.ts'
import { DEMO_USER } from '../../src/demo/idp.ts'
import { startDemoParts, type DemoIdp, type DemoParts } from '../../src/demo/parts.ts'
import { createCookieJar, redirectLocation } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { accessTokenOf } from '../helpers/session-cookie.ts'
import { readSse } from '../helpers/sse.ts'
import { freePort } from '../helpers/upstream.ts'
import { closed } from '../helpers/ws-client.ts'

// Nothing listens here in the first part: the IdP redirects to it, and the test reads the redirect.
const BASE_URL = 'http://localhost:3999'

interface Tick {
  type: string
  n: number
  sub: string
  text?: string
}

/** demo/demo's access token from `demoIdp`, through its login pages, as the BFF would get it. */
async function accessToken(demoIdp: DemoIdp) {
  const config = await client.discovery(
    new URL(demoIdp.idp.issuer),
    demoIdp.clientId,
    undefined,
    client.ClientSecretBasic(demoIdp.clientSecret!),
    { execute: [client.allowInsecureRequests] }
  )
  const redirectUri = `${BASE_URL}/bff/callback/${demoIdp.name}`
  const verifier = client.randomPKCECodeVerifier()
  const authorizeUrl = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid profile offline_access',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  })
  const back = redirectLocation(await loginAtIdp(createCookieJar(), authorizeUrl, DEMO_USER))!
  const tokens = await client.authorizationCodeGrant(config, back, { pkceCodeVerifier: verifier })
  return { config, tokens }
}

/** An open socket and its messages in order: kept from the first, which may come with the 101. */
interface Feed {
  ws: WebSocket
  next(): Promise<Tick>
  nextRaw(): Promise<{ data: Buffer; isBinary: boolean }>
}

type Connected = Feed | { status: number; challenge?: string; body: Record<string, unknown> }

/** A WebSocket to `url`; resolves open, or the refusal's status, challenge and body. */
function connect(url: string, headers: Record<string, string>): Promise<Connected> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false })
    const inbox: Array<{ data: Buffer; isBinary: boolean }> = []
    const waiting: Array<() => void> = []
    ws.on('message', (data, isBinary) => {
      inbox.push({ data: data as Buffer, isBinary })
      waiting.shift()?.()
    })
    const nextRaw = async () => {
      while (!inbox.length) await new Promise<void>((wake) => waiting.push(wake))
      return inbox.shift()!
    }
    const next = async () => JSON.parse((await nextRaw()).data.toString()) as Tick
    ws.once('open', () => resolve({ ws, next, nextRaw }))
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => (text += chunk))
      res.on('end', () =>
        resolve({
          status: res.statusCode!,
          challenge: res.headers['www-authenticate'],
          body: JSON.parse(text),
        })
      )
    })
    ws.once('error', reject)
  })
}

async function open(url: string, headers: Record<string, string>): Promise<Feed> {
  const connected = await connect(url, headers)
  if (!('ws' in connected)) throw new Error(`refused: ${connected.status}`)
  return connected
}

describe('the demo API: the feed and the ticker, straight', () => {
  let demo: DemoParts
  let api: string
  let token: string

  beforeAll(async () => {
    demo = await startDemoParts(BASE_URL)
    const routes = JSON.parse(demo.configFile!).routes as Array<Record<string, unknown>>
    expect(routes.find((route) => route.prefix === '/live/')).toMatchObject({ websocket: true })
    api = String(routes.find((route) => route.prefix === '/api/')!.upstream).replace(/\/$/, '')
    token = (await accessToken(demo.idps[0]!)).tokens.access_token
  })
  afterAll(() => demo?.stop())

  it('feed: a tick at once with the token’s sub, one a second after it, and an echo', async () => {
    const { ws, next, nextRaw } = await open(`${api.replace('http', 'ws')}/live/feed`, {
      authorization: `Bearer ${token}`,
    })
    const first = await next()
    const at = performance.now()
    expect(first).toMatchObject({ type: 'tick', n: 1, sub: 'demo' })
    expect(await next()).toMatchObject({ type: 'tick', n: 2, sub: 'demo' })
    const gap = performance.now() - at
    expect(gap).toBeGreaterThan(800)
    expect(gap).toBeLessThan(1500)
    ws.send('hello feed')
    expect(await next()).toMatchObject({ type: 'echo', sub: 'demo', text: 'hello feed' })
    ws.send(Buffer.from([1, 2, 3]))
    expect(await nextRaw()).toEqual({ data: Buffer.from([1, 2, 3]), isBinary: true })
    // A message larger than the feed takes closes the socket (1009), not the API.
    const end = closed(ws)
    ws.send('x'.repeat(5000))
    expect((await end).code).toBe(1009)
  })

  it('feed: refuses an upgrade without a token, with an unknown one, and on another path', async () => {
    const feed = `${api.replace('http', 'ws')}/live/feed`
    expect(await connect(feed, {})).toMatchObject({
      status: 401,
      challenge: expect.stringMatching(/^Bearer/),
      body: { error: 'unauthorized' },
    })
    expect(await connect(feed, { authorization: 'Bearer made-up-token' })).toMatchObject({
      status: 401,
      challenge: 'Bearer error="invalid_token"',
      body: { error: 'invalid_token' },
    })
    // A DPoP token without a proof is no bearer token either.
    expect(await connect(feed, { authorization: `DPoP ${token}` })).toMatchObject({
      status: 401,
      body: { error: 'invalid_dpop_proof' },
    })
    expect(
      await connect(`${api.replace('http', 'ws')}/live/other`, {
        authorization: `Bearer ${token}`,
      })
    ).toMatchObject({ status: 404, body: { error: 'not_found' } })
  })

  it('ticker: text/event-stream, the first event before the second is written', async () => {
    const controller = new AbortController()
    const response = await fetch(`${api}/ticker`, {
      headers: { authorization: `Bearer ${token}` },
      signal: controller.signal,
    })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
    const first = await reader.read()
    expect(first.value).toMatch(
      /^id: 1\nevent: tick\ndata: \{"n":1,"sub":"demo","time":"[^"]+"\}\n\n$/
    )
    const at = performance.now()
    expect((await reader.read()).value).toMatch(/^id: 2\nevent: tick\n/)
    expect(performance.now() - at).toBeGreaterThan(800)
    controller.abort()
  })

  it('ticker: ends after ?count= events; a bad count is 400, no token 401', async () => {
    const auth = { headers: { authorization: `Bearer ${token}` } }
    const two = await fetch(`${api}/ticker?count=2`, auth)
    const reader = readSse(two)
    await reader.ended
    expect(reader.events.map((event) => [event.event, JSON.parse(event.data).n])).toEqual([
      ['tick', 1],
      ['tick', 2],
    ])
    for (const count of ['0', '-1', '1.5', 'x', '3601']) {
      const bad = await fetch(`${api}/ticker?count=${count}`, auth)
      expect([bad.status, (await bad.json()).error], count).toEqual([400, 'invalid_request'])
    }
    const anonymous = await fetch(`${api}/ticker`)
    expect(anonymous.status).toBe(401)
  })

  it('feed: a token revoked at the IdP is refused at the next upgrade', async () => {
    const { config, tokens } = await accessToken(demo.idps[1]!)
    const feed = `${api.replace('http', 'ws')}/live/feed`
    const headers = { authorization: `Bearer ${tokens.access_token}` }
    const feedOf = await open(feed, headers)
    expect(await feedOf.next()).toMatchObject({ sub: 'demo' })
    feedOf.ws.close()
    await client.tokenRevocation(config, tokens.access_token)
    expect(await connect(feed, headers)).toMatchObject({ status: 401 })
  })
})

describe('the demo for Workers (npm run dev:worker)', () => {
  it('leaves the /live/ route out when asked: the Workers adapter refuses WebSocket routes', async () => {
    const demo = await startDemoParts(BASE_URL, {}, { liveFeed: false })
    try {
      const config = optionsFromEnv(demo.settings, { configFile: demo.configFile })
      expect(config.api.map((route) => route.prefix)).not.toContain('/live/')
      expect(config.api.filter((route) => route.websocket)).toEqual([])
      // The ticker is an ordinary /api/ call there too.
      expect(config.api.map((route) => route.prefix)).toContain('/api/')
    } finally {
      await demo.stop()
    }
  })
})

describe('through the BFF as npm start wires it, in the FAPI 2.0 profile (DPoP on the upgrade)', () => {
  let demo: DemoParts
  let bff: NodeServer
  let dir: string
  let origin: string
  const secret = 'live-feed-test-session-secret-0123456789'

  beforeAll(async () => {
    const port = await freePort()
    origin = `http://localhost:${port}`
    demo = await startDemoParts(origin, {
      BFF_DEMO_PROFILE: 'fapi2',
      BFF_SESSION_SECRET: secret,
    })
    dir = await mkdtemp(path.join(tmpdir(), 'bff-live-'))
    const file = path.join(dir, 'bff.json')
    await writeFile(file, demo.configFile!)
    bff = await startNode(
      { ...demo.settings, BFF_CONFIG: file, PORT: String(port), HOST: '127.0.0.1' },
      { serveStatic: false, deps: { log: () => {} } }
    )
  })
  afterAll(async () => {
    await bff?.close()
    await demo?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('relays the feed with the session’s DPoP-bound token, the ticker too; logout closes the feed (1008)', async () => {
    const jar = createCookieJar({ baseUrl: origin })
    const atIdp = await loginAtIdp(jar, redirectLocation(await jar.get('/bff/login'))!, DEMO_USER)
    expect((await jar.follow(atIdp)).status).toBe(302)

    // As a page of the BFF's origin opens it: its Origin and the session cookie, no X-CSRF.
    const cookie = Object.entries(jar.cookies(origin))
      .map(([name, value]) => `${name}=${value}`)
      .join('; ')
    const { ws, next } = await open(`${origin.replace('http', 'ws')}/live/feed`, { origin, cookie })
    expect(await next()).toMatchObject({ type: 'tick', n: 1, sub: 'demo' })
    ws.send('through the BFF')
    expect(await next()).toMatchObject({ type: 'echo', text: 'through the BFF' })

    // The ticker through the BFF's /api/ route: each event as it comes.
    const controller = new AbortController()
    const ticker = await jar.get('/api/ticker', {
      headers: { 'x-csrf': '1' },
      signal: controller.signal,
    })
    expect([ticker.status, ticker.headers.get('content-type')]).toEqual([
      200,
      'text/event-stream; charset=utf-8',
    ])
    const reader = ticker.body!.pipeThrough(new TextDecoderStream()).getReader()
    expect((await reader.read()).value).toContain('"n":1,"sub":"demo"')
    controller.abort()

    // The token is bound to the session's key: taken out of the cookie and sent without a proof
    // (as a bearer token, or as DPoP), the feed refuses it.
    const token = await accessTokenOf(jar, origin, secret)
    const api = String(
      (JSON.parse(demo.configFile!).routes as Array<Record<string, string>>).find(
        (route) => route.prefix === '/live/'
      )!.upstream
    ).replace(/^http/, 'ws')
    for (const authorization of [`Bearer ${token}`, `DPoP ${token}`]) {
      expect(await connect(`${api}feed`, { authorization })).toMatchObject({ status: 401 })
    }

    const end = closed(ws)
    const logout = await jar.request('POST', '/bff/logout', { headers: { 'x-csrf': '1' } })
    expect(logout.status).toBe(302)
    const { code, ms } = await end
    expect(code).toBe(1008)
    expect(ms).toBeLessThan(1000)
  })
})
