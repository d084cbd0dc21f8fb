/**
 * WebSocket routes at their edges, on Node and in workerd: a DPoP-bound session (the upgrade
 * carries a proof for GET and the upstream's http URL, sent again with the upstream's nonce), a
 * message over the size limit, the server shutting down (Node), and what the server does with
 * handshakes it must not complete and with upgrades to something else than WebSocket.
 */
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { startDpopUpstream, type DpopUpstream } from '../helpers/dpop-upstream.ts'
import type { CookieJar } from '../helpers/http.ts'
import { introspectAsApi } from '../helpers/introspect.ts'
import { closed, nextMessage, openSocket, socketOf } from '../helpers/ws-client.ts'
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts'
import { CSRF, TARGET, startStack, type Stack } from './harness.ts'

/**
 * Sends `head` (and `body`) on a connection of its own; answers all the server sent: until it
 * closes the connection, or (workerd keeps it open) until the answer is whole.
 */
function raw(stack: Stack, head: string, body = ''): Promise<string> {
  const { port, hostname } = new URL(stack.url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(`${head}\r\n${body}`))
    let text = ''
    socket.on('data', (chunk) => {
      text += chunk
      const end = text.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = text.slice(0, end)
      const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1]
      const whole =
        length !== undefined
          ? text.length >= end + 4 + Number(length)
          : /\r\ntransfer-encoding: *chunked/i.test(head) && text.endsWith('\r\n0\r\n\r\n')
      if (whole) socket.destroy()
    })
    socket.on('close', () => resolve(text))
    socket.on('error', reject)
    setTimeout(() => socket.destroy(), 5000)
  })
}

const cookieOf = (stack: Stack, jar: CookieJar) =>
  Object.entries(jar.cookies(stack.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')

describe('a WebSocket route with DPoP-bound tokens', () => {
  let upstream: DpopUpstream
  let stack: Stack
  beforeAll(async () => {
    upstream = await startDpopUpstream({ nonce: true })
    stack = await startStack({
      idp: { dpopNonce: true },
      clientMetadata: { dpop_bound_access_tokens: true },
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer }) => ({
        idps: {
          corp: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
            dpop: true,
          },
        },
        routes: [{ prefix: '/live/', upstream: `${upstream.url}/ws/`, websocket: true }],
      }),
    })
    upstream.introspect = (token) => introspectAsApi(stack.idp, token)
  })
  afterAll(async () => {
    await stack?.close()
    await upstream?.close()
  })

  it('opens the upstream with a DPoP proof for GET and its http URL, after its nonce', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    const ws = await socketOf(openSocket(stack, '/live/feed?x=1', { jar }))
    ws.send('bound')
    expect((await nextMessage(ws)).data.toString()).toBe('bound')
    // The first upgrade was challenged for the upstream's nonce, the second carried it.
    expect(upstream.requests.map((r) => [r.method, r.url, r.refused])).toEqual([
      ['GET', '/ws/feed?x=1', 'nonce'],
      ['GET', '/ws/feed?x=1', undefined],
    ])
    const ended = closed(ws)
    ws.close()
    await ended
  })
})

describe('the server and WebSocket upgrades', () => {
  let upstream: WsUpstream
  let stack: Stack
  let jar: CookieJar
  let closedStack = false
  beforeAll(async () => {
    upstream = await startWsUpstream()
    stack = await startStack({
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer, upstream: http }) => ({
        idps: {
          corp: { issuer, clientId: DEMO_BFF_CLIENT.clientId, clientSecret: '${TEST_IDP_SECRET}' },
        },
        routes: [
          { prefix: '/live/', upstream: `${upstream.url}/ws/`, websocket: true },
          { prefix: '/api/', upstream: `${http}/` },
        ],
      }),
    })
    jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
  })
  afterAll(async () => {
    if (!closedStack) await stack?.close()
    await upstream?.close()
  })

  const handshake = (path: string, extra: Record<string, string> = {}) =>
    Object.entries({
      Host: new URL(stack.url).host,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version': '13',
      Origin: new URL(stack.baseUrl).origin,
      Cookie: cookieOf(stack, jar),
      ...extra,
    }).reduce((head, [name, value]) => `${head}${name}: ${value}\r\n`, `GET ${path} HTTP/1.1\r\n`)

  it('refuses a malformed key (400) and another version (426) before the app runs', async () => {
    const before = upstream.upgrades.length
    expect(await raw(stack, handshake('/live/echo', { 'Sec-WebSocket-Key': 'short' }))).toMatch(
      /^HTTP\/1\.1 400 .*"error":"invalid_request"/s
    )
    const version = await raw(stack, handshake('/live/echo', { 'Sec-WebSocket-Version': '8' }))
    expect(version).toMatch(/^HTTP\/1\.1 426 /)
    expect(version).toMatch(/Sec-WebSocket-Version: 13/)
    expect(upstream.upgrades.length).toBe(before)
  })

  it('serves an upgrade to something else as an ordinary request; with a body, 400', async () => {
    const before = stack.upstream.requests.length
    const h2c = handshake('/api/plain', { Upgrade: 'h2c', 'X-CSRF': '1' })
    const answer = await raw(stack, h2c)
    expect(answer).toMatch(/^HTTP\/1\.1 200 /)
    expect(answer).toContain('"path":"/plain"')
    expect(stack.upstream.requests.length).toBe(before + 1)
    // The upstream never sees the browser's Upgrade.
    expect(stack.upstream.requests.at(-1)!.headers.upgrade).toBeUndefined()
    const post = h2c.replace(/^GET/, 'POST') + 'Content-Length: 5\r\n'
    if (TARGET === 'node') {
      // Node stops parsing an upgrade request at its headers: one with a body cannot be served.
      expect(await raw(stack, post, 'hello')).toMatch(/^HTTP\/1\.1 400 /)
      expect(stack.upstream.requests.length).toBe(before + 1)
    } else {
      // workerd reads it as any request, body and all.
      expect(await raw(stack, post, 'hello')).toMatch(/^HTTP\/1\.1 200 /)
      expect(stack.upstream.requests.at(-1)!.headers.upgrade).toBeUndefined()
    }
  })

  it('closes with 1009 a message over 1 MiB, both sides', async () => {
    const ws = await socketOf(openSocket(stack, '/live/echo', { jar }))
    const count = upstream.closes.length
    const ended = closed(ws)
    ws.send(Buffer.alloc(1024 * 1024 + 1))
    expect((await ended).code).toBe(1009)
    await expect.poll(() => upstream.closes.length).toBeGreaterThan(count)
    expect(upstream.closes.at(-1)!.code).toBe(1009)
  })

  it('sets the session cookie of a refreshed cookie session on the 101', async () => {
    const other = stack.jar()
    await stack.login(other, { user: 'frank' })
    const before = (await stack.sessionOf(other))!
    stack.advance(120) // the token has expired: the upgrade refreshes the session
    const ws = await socketOf(openSocket(stack, '/live/echo', { jar: other }))
    const after = (await stack.sessionOf(other))!
    expect(after.generation).toBeGreaterThan(before.generation)
    expect((await other.get('/bff/user', { headers: CSRF })).status).toBe(200)
    ws.close()
  })

  // A Worker has no shutdown of its own: Cloudflare ends its connections when it replaces it.
  const onNode = TARGET === 'node' ? it : it.skip
  const why = TARGET === 'node' ? '' : ' (skipped on workerd: a Worker has no shutdown of its own)'
  onNode(`closes every socket with 1001 when the server shuts down${why}`, async () => {
    const ws = await socketOf(openSocket(stack, '/live/echo', { jar }))
    const ended = closed(ws)
    closedStack = true
    await stack.close()
    expect(await ended).toMatchObject({ code: 1001, reason: 'server_shutdown' })
  })
})
