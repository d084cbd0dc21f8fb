/**
 * WebSocket routes end to end (DESIGN "Streaming", README "WebSocket routes"): a real login at the
 * IdP, the BFF on Node and in workerd, a WebSocket upstream on loopback and a `ws` client standing
 * in for the browser (sending what a browser sends: `Origin` and the session cookie, no
 * `X-CSRF`). Each refusal is shown never reaching the upstream; frames, close codes, backpressure
 * (Node: Workers have none, docs/workers.md), the session's end and the connection limit are
 * shown on real sockets. Close latencies are printed.
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { inProcessBus } from '../../src/core/session/live.ts'
import type { CookieJar } from '../helpers/http.ts'
import { closed, nextMessage, openSocket, socketOf, until } from '../helpers/ws-client.ts'
import { floodSha256, startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts'
import { CSRF, SERVER_STORE, TARGET, startStack, type Stack } from './harness.ts'

const MB = 1024 * 1024

/** What the tests measured, printed at the end: how long after its cause each socket closed. */
const latencies: string[] = []
afterAll(() => {
  if (latencies.length)
    console.log(`WebSocket close latencies (${TARGET}):\n${latencies.join('\n')}`)
})

describe(`WebSocket routes (${SERVER_STORE} store)`, () => {
  let upstream: WsUpstream
  let stack: Stack
  let alice: CookieJar
  // Node: the bus the test publishes ends on (workerd: the Durable Objects, stack.publishEnd).
  const bus = inProcessBus()

  beforeAll(async () => {
    upstream = await startWsUpstream()
    stack = await startStack({
      store: SERVER_STORE,
      sessionEnds: bus,
      idpClaims: { realm_access: { roles: ['admin', 'user'] } },
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret, BFF_UPSTREAM_TIMEOUT: '1' },
      configFile: ({ issuer, upstream: http }) => ({
        idps: {
          corp: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
            claims: { roles: 'realm_access.roles' },
          },
        },
        routes: [
          { prefix: '/live/', upstream: `${upstream.url}/ws/`, websocket: true },
          {
            prefix: '/auditors/',
            upstream: `${upstream.url}/ws/`,
            websocket: true,
            require: { roles: 'auditor' },
          },
          { prefix: '/open/', upstream: `${upstream.url}/ws/`, websocket: true, token: 'none' },
          { prefix: '/nowhere/', upstream: 'http://127.0.0.1:9/', websocket: true },
          { prefix: '/api/', upstream: `${http}/` },
        ],
      }),
    })
    alice = stack.jar()
    expect((await stack.login(alice)).status).toBe(302)
  })
  afterAll(async () => {
    await stack?.close()
    await upstream?.close()
  })

  it('relays text as text and binary as binary, both ways, with the route token upstream', async () => {
    const before = upstream.upgrades.length
    const ws = await socketOf(openSocket(stack, '/live/echo?x=1', { jar: alice }))
    ws.send('héllo')
    expect(await nextMessage(ws)).toEqual({ data: Buffer.from('héllo'), isBinary: false })
    const bytes = Buffer.from([0, 1, 2, 255, 254])
    ws.send(bytes)
    expect(await nextMessage(ws)).toEqual({ data: bytes, isBinary: true })

    const seen = upstream.upgrades.slice(before)
    expect(seen).toHaveLength(1)
    const { url, headers } = seen[0]!
    expect(url).toBe('/ws/echo?x=1')
    // The session's access token, as the IdP itself vouches for it; nothing of the browser's own.
    const token = /^Bearer (.+)$/.exec(headers.authorization ?? '')?.[1]
    expect(token).toBeDefined()
    expect(await stack.introspect(token!)).toMatchObject({ active: true, sub: 'alice' })
    expect(headers.cookie).toBeUndefined()
    expect(headers['x-csrf']).toBeUndefined()
    expect(headers['x-forwarded-host']).toBe(new URL(stack.baseUrl).host)
    expect(headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
    ws.close(1000)
  })

  it('passes close codes and reasons both ways', async () => {
    const ws = await socketOf(openSocket(stack, '/live/echo', { jar: alice }))
    const ended = closed(ws)
    ws.send('close 4001 upstream says bye')
    expect(await ended).toMatchObject({ code: 4001, reason: 'upstream says bye' })

    const other = await socketOf(openSocket(stack, '/live/echo', { jar: alice }))
    const count = upstream.closes.length
    other.close(4002, 'browser says bye')
    await until(() => upstream.closes.length > count)
    expect(upstream.closes.at(-1)).toEqual({ code: 4002, reason: 'browser says bye' })
  })

  it('passes a close without a code as one (1005), both ways', async () => {
    const ws = await socketOf(openSocket(stack, '/live/echo', { jar: alice }))
    const ended = closed(ws)
    ws.send('close')
    expect(await ended).toMatchObject({ code: 1005, reason: '' })

    const other = await socketOf(openSocket(stack, '/live/echo', { jar: alice }))
    const count = upstream.closes.length
    other.close()
    await until(() => upstream.closes.length > count)
    expect(upstream.closes.at(-1)).toEqual({ code: 1005, reason: '' })
  })

  it('a connection broken without a close breaks the other (Node) or closes it 1011 (Workers)', async () => {
    const ws = await socketOf(openSocket(stack, '/live/echo', { jar: alice }))
    const ended = closed(ws)
    ws.send('terminate')
    // A Worker cannot drop a connection: it says 1011, the code of a server that cannot go on.
    expect(await ended).toMatchObject(
      TARGET === 'node' ? { code: 1006 } : { code: 1011, reason: 'connection_lost' }
    )

    const other = await socketOf(openSocket(stack, '/live/echo', { jar: alice }))
    const count = upstream.closes.length
    other.terminate()
    await until(() => upstream.closes.length > count)
    expect(upstream.closes.at(-1)).toEqual(
      TARGET === 'node' ? { code: 1006, reason: '' } : { code: 1011, reason: 'connection_lost' }
    )
  })

  it('opens without a subprotocol when the upstream picks none of those offered', async () => {
    const answer = await rawUpgrade(stack, '/live/noproto', alice, {
      'Sec-WebSocket-Protocol': 'a, b',
    })
    expect(answer).toMatch(/^HTTP\/1\.1 101 /)
    expect(answer.toLowerCase()).not.toContain('sec-websocket-protocol')
    expect(upstream.upgrades.at(-1)!.headers['sec-websocket-protocol']).toBe('a, b')
  })

  it('passes the subprotocol the upstream chose among those offered', async () => {
    const ws = await socketOf(
      openSocket(stack, '/live/echo', { jar: alice, protocols: ['a', 'b'] })
    )
    expect(ws.protocol).toBe('b')
    expect(upstream.upgrades.at(-1)!.headers['sec-websocket-protocol']).toBe('a, b')
    ws.close()
  })

  describe('refusals never reach the upstream', () => {
    const refused = async (
      path: string,
      options: Parameters<typeof openSocket>[2],
      status: number,
      error: string
    ) => {
      const before = upstream.upgrades.length
      const result = await openSocket(stack, path, options)
      expect(result).toMatchObject({ status, body: { error } })
      expect(upstream.upgrades.length).toBe(before)
    }

    it('a wrong or missing Origin: 403 csrf, in the audit trail', async () => {
      await refused('/live/echo', { jar: alice, origin: 'https://evil.example' }, 403, 'csrf')
      await refused('/live/echo', { jar: alice, origin: null }, 403, 'csrf')
      // The same origin on another port is another origin.
      const port = Number(new URL(stack.url).port) + 1
      await refused('/live/echo', { jar: alice, origin: `http://127.0.0.1:${port}` }, 403, 'csrf')
      // workerd's lines arrive shortly after the answer.
      const audit = () =>
        stack
          .logs()
          .flatMap((line) => {
            try {
              return [JSON.parse(line)]
            } catch {
              return [] // workerd's own lines
            }
          })
          .filter((line) => line.audit && line.event === 'csrf_rejected' && line.route === '/live/')
      await expect.poll(() => audit().length).toBe(3)
      expect(audit().map((line) => line.reason)).toEqual([
        'wrong_origin',
        'missing_origin',
        'wrong_origin',
      ])
    })

    it('no session: 401', async () => {
      await refused('/live/echo', { jar: stack.jar() }, 401, 'unauthenticated')
    })

    it('a route without websocket: 403 websocket_not_allowed, the HTTP upstream never asked', async () => {
      const before = stack.upstream.requests.length
      await refused('/api/echo', { jar: alice }, 403, 'websocket_not_allowed')
      expect(stack.upstream.requests.length).toBe(before)
      // The route still serves plain calls.
      expect((await alice.get('/api/x', { headers: CSRF })).status).toBe(200)
    })

    it('a route whose require the user does not meet: 403 forbidden', async () => {
      await refused('/auditors/echo', { jar: alice }, 403, 'forbidden')
    })

    it('a path climbing out of the prefix: 400 invalid_path', async () => {
      await refused('/live/..%2f..%2fadmin', { jar: alice }, 400, 'invalid_path')
    })

    it('a malformed subprotocol list: 400', async () => {
      const before = upstream.upgrades.length
      // The ws client checks what it sends: a raw handshake says what a broken client could.
      const answer = await rawUpgrade(stack, '/live/echo', alice, {
        'Sec-WebSocket-Protocol': 'a b',
      })
      expect(answer).toMatch(/^HTTP\/1\.1 400 /)
      expect(upstream.upgrades.length).toBe(before)
    })
  })

  it('a route with token none needs no session', async () => {
    const ws = await socketOf(openSocket(stack, '/open/echo', { jar: stack.jar() }))
    expect(upstream.upgrades.at(-1)!.headers.authorization).toBeUndefined()
    ws.close()
  })

  it("the upstream's refusal reaches the browser with its status, cleaned", async () => {
    for (const status of [401, 403, 404]) {
      const result = await openSocket(stack, `/live/refuse?status=${status}`, { jar: alice })
      expect(result).toMatchObject({ status, body: { error: 'refused_by_upstream' } })
      const { headers } = result as { headers: Headers }
      expect(headers.get('set-cookie')).toBeNull()
      expect(headers.get('www-authenticate')).toBeNull()
    }
  })

  it('an unreachable upstream: 502; one that never answers: 504 after the upstream timeout', async () => {
    expect(await openSocket(stack, '/nowhere/x', { jar: alice })).toMatchObject({
      status: 502,
      body: { error: 'upstream_unavailable' },
    })
    const start = performance.now()
    expect(await openSocket(stack, '/live/hang', { jar: alice })).toMatchObject({
      status: 504,
      body: { error: 'upstream_timeout' },
    })
    expect(performance.now() - start).toBeLessThan(3000)
  })

  it('closes the socket (1008) within 1 s of POST /bff/logout, and the upstream socket too', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const ws = await socketOf(openSocket(stack, '/live/echo', { jar }))
    const count = upstream.closes.length
    // From the logout's request being sent to the browser's socket closing.
    const ended = closed(ws)
    expect((await jar.post('/bff/logout', { headers: CSRF })).status).toBe(302)
    const { code, reason, ms } = await ended
    latencies.push(`POST /bff/logout -> 1008 in ${ms.toFixed(1)} ms`)
    expect({ code, reason }).toEqual({ code: 1008, reason: 'session_ended:logout' })
    expect(ms).toBeLessThan(1000)
    await until(() => upstream.closes.length > count)
    expect(upstream.closes.at(-1)).toEqual({ code: 1008, reason: 'session_ended:logout' })
  })

  it('closes every socket of the session for each way a session ends on the bus', async () => {
    for (const reason of [
      'backchannel_logout',
      'admin_revoke',
      'session_expired',
      'refresh_failed',
    ] as const) {
      const jar = stack.jar()
      await stack.login(jar, { user: `bob-${reason}` })
      const session = (await stack.sessionOf(jar))!
      const sockets = await Promise.all(
        [1, 2].map(() => socketOf(openSocket(stack, '/live/echo', { jar })))
      )
      const bystander = await socketOf(openSocket(stack, '/live/echo', { jar: alice }))
      const ended = sockets.map(closed)
      await stack.publishEnd({ reason, sub: session.sub, idp: 'corp' })
      for (const end of await Promise.all(ended)) {
        expect(end).toMatchObject({ code: 1008, reason: `session_ended:${reason}` })
        expect(end.ms).toBeLessThan(1000)
      }
      latencies.push(
        `${reason} by sub -> 1008 in ${Math.max(...(await Promise.all(ended)).map((e) => e.ms)).toFixed(1)} ms`
      )
      // alice is another subject: her socket stays.
      bystander.send('still here')
      expect((await nextMessage(bystander)).data.toString()).toBe('still here')
      bystander.close()
    }
  })

  it('refuses the 17th socket of a session with 429 too_many_connections', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const sockets = await Promise.all(
      Array.from({ length: 16 }, () => socketOf(openSocket(stack, '/live/echo', { jar })))
    )
    const before = upstream.upgrades.length
    expect(await openSocket(stack, '/live/echo', { jar })).toMatchObject({
      status: 429,
      body: { error: 'too_many_connections' },
    })
    expect(upstream.upgrades.length).toBe(before)
    // A socket closed gives its place back.
    const one = closed(sockets[0]!)
    sockets[0]!.close()
    await one
    await until(() => true)
    const again = await socketOf(openSocket(stack, '/live/echo', { jar }))
    for (const ws of [...sockets, again]) ws.close()
  })

  // Workers have no backpressure (no bufferedAmount, no pause: docs/workers.md): there the tests
  // show the runtime taking in what the reader cannot take yet, and still delivering it intact.
  const held = TARGET === 'node' ? 'holds' : 'does not hold (Workers)'
  it(
    `${held} a fast upstream back while the browser does not read, and delivers all of it intact`,
    { timeout: 60_000 },
    async () => {
      const total = 64 * MB
      const ws = await socketOf(openSocket(stack, `/live/flood?bytes=${total}`, { jar: alice }))
      ws.pause()
      const startFlooded = upstream.flooded()
      await new Promise((resolve) => setTimeout(resolve, 1500))
      // Unread, the flood waits at the upstream: the BFF holds no more than its high-water mark
      // and the sockets' buffers, far from the 64 MB. In workerd it is read on regardless.
      const sent = upstream.flooded() - startFlooded
      if (TARGET === 'node') expect(sent).toBeLessThan(16 * MB)
      else expect(sent).toBeGreaterThan(16 * MB)
      const heap = process.memoryUsage()
      expect(heap.arrayBuffers).toBeLessThan(200 * MB)
      const hash = createHash('sha256')
      let bytes = 0
      const done = closed(ws)
      ws.on('message', (data: Buffer, isBinary) => {
        expect(isBinary).toBe(true)
        hash.update(data)
        bytes += data.length
      })
      ws.resume()
      expect(await done).toMatchObject({ code: 1000, reason: 'flood done' })
      expect({ bytes, sha256: hash.digest('hex') }).toEqual({
        bytes: total,
        sha256: floodSha256(total),
      })
    }
  )

  it(
    `${held} the browser back while the upstream does not read, and delivers all of it intact`,
    { timeout: 60_000 },
    async () => {
      const ws = await socketOf(openSocket(stack, '/live/sink?hold=1', { jar: alice }))
      const piece = Buffer.alloc(64 * 1024, 7)
      const hash = createHash('sha256')
      let queued = 0
      // 32 MB offered: the client's own socket fills once the BFF stops reading it.
      for (let i = 0; i < 512; i++) {
        ws.send(piece)
        hash.update(piece)
        queued += piece.length
      }
      await new Promise((resolve) => setTimeout(resolve, 1500))
      // Node stops reading the browser; workerd reads on, and the client's buffer empties.
      if (TARGET === 'node') expect(ws.bufferedAmount).toBeGreaterThan(8 * MB)
      else await until(() => ws.bufferedAmount === 0, 30_000)
      upstream.release()
      await until(() => ws.bufferedAmount === 0, 30_000)
      ws.send('done')
      const answer = JSON.parse((await nextMessage(ws)).data.toString())
      expect(answer).toEqual({ bytes: queued, sha256: hash.digest('hex') })
      ws.close()
    }
  )
})

/** A hand-written handshake, for what a `ws` client would not send; answers the status line on. */
async function rawUpgrade(
  stack: Stack,
  path: string,
  jar: CookieJar,
  extra: Record<string, string>
): Promise<string> {
  const { connect } = await import('node:net')
  const { port, hostname } = new URL(stack.url)
  const cookie = Object.entries(jar.cookies(stack.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
  const lines = {
    Host: `${hostname}:${port}`,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version': '13',
    Origin: new URL(stack.baseUrl).origin,
    Cookie: cookie,
    ...extra,
  }
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\n${Object.entries(lines)
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join('')}\r\n`
      )
    })
    let text = ''
    socket.on('data', (chunk) => {
      text += chunk
      // A 101 leaves the connection open: its head is all there is to read. So may a refusal
      // (workerd keeps the connection alive): its head and Content-Length bytes are all.
      const end = text.indexOf('\r\n\r\n')
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? NaN)
      if (end >= 0 && (text.startsWith('HTTP/1.1 101 ') || text.length >= end + 4 + length)) {
        socket.destroy()
      }
    })
    socket.on('close', () => resolve(text))
    socket.on('error', reject)
    setTimeout(() => socket.destroy(), 5000)
  })
}
