/**
 * The Node transport for proxied calls (src/adapters/node/upstream.ts) against the contract of
 * core/proxy/forward.ts's `forward`: the same cases as test/core/proxy/forward.test.ts, and a side-by-side run of
 * both transports. Requests come in over real HTTP to a @hono/node-server app (the transport reads
 * the server's IncomingMessage); the Response the transport answers with is handed to the test as
 * it is.
 */
import { serve, type ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import { createHash, randomBytes } from 'node:crypto'
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type Server,
} from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { BffError } from '../../../src/core/errors.ts'
import { forward, type ForwardOptions, type Forwarder } from '../../../src/core/proxy/forward.ts'
import { nodeForward } from '../../../src/adapters/node/upstream.ts'
import {
  ANSWER_ONLY,
  FORGED,
  ORDINARY,
  ORIGIN_WIDE,
  expectForgedDroppedOrdinaryKept,
} from '../../helpers/proxy-headers.ts'

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  bodySha256: string
  bodyLength: number
}

const PLAIN = 'hello, decoded world '.repeat(100)

let upstream: Server
let origin: string
let seen: Seen[] = []
/** Requests to /base/drop*, and how many more of /base/drop-first lose their connection. */
let dropArrivals = 0
let dropsLeft = 0
const sockets = new Set<Socket>()

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const path = new URL(req.url!, 'http://upstream').pathname
    if (path === '/base/slow-stream') {
      // Headers and a first chunk now, the rest later: the proxy must not wait for the end.
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first;')
      setTimeout(() => res.end('second'), 600)
      req.resume()
      return
    }
    if (path === '/base/drop' || (path === '/base/drop-first' && dropsLeft-- > 0)) {
      // The connection goes before any answer, as a kept-alive one closed just as it was reused.
      dropArrivals++
      req.socket.destroy()
      return
    }
    if (path === '/base/drop-first') {
      dropArrivals++
      req.resume()
      res.end('answered on the second try')
      return
    }
    if (path === '/base/broken' || path === '/base/broken-at-once') {
      // A body that breaks off: promised 100 bytes, 7 sent, connection gone.
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' })
      res.write('partial')
      if (path === '/base/broken-at-once') res.socket!.end()
      else setTimeout(() => res.socket!.destroy(), 100)
      req.resume()
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const bodySha256 = createHash('sha256').update(body).digest('hex')
      seen.push({
        method: req.method!,
        url: req.url!,
        headers: req.headers,
        bodySha256,
        bodyLength: body.length,
      })
      const encoded = (encoding: string, data: Buffer) => {
        res.writeHead(200, {
          'content-type': 'text/plain',
          'content-encoding': encoding,
          'content-length': String(data.length),
        })
        res.end(data)
      }
      switch (path) {
        case '/base/echo':
          res.writeHead(200, {
            'content-type': 'application/octet-stream',
            'x-received-sha256': bodySha256,
          })
          res.end(body)
          return
        case '/base/created':
          res.writeHead(201, {
            'content-type': 'application/json',
            'x-upstream': 'yes',
            'cache-control': 'no-cache',
            'set-cookie': ['upstream_session=abc; Path=/', 'tracking=1; Path=/'],
          })
          res.end('{"id":1}')
          return
        case '/base/cacheable':
          res.writeHead(200, {
            'cache-control': new URL(req.url!, 'http://upstream').searchParams.get('cc') ?? '',
            vary: new URL(req.url!, 'http://upstream').searchParams.get('vary') ?? 'accept',
          })
          res.end('cacheable')
          return
        case '/base/missing':
          res.writeHead(404, { 'content-type': 'text/plain', 'set-cookie': 'x=1' })
          res.end('nope')
          return
        case '/base/redirect':
          res.writeHead(302, { location: `${origin}/base/redirect-target` })
          res.end()
          return
        case '/base/hop':
          res.setHeader('connection', 'x-internal')
          res.setHeader('x-internal', 'upstream-only')
          res.setHeader('keep-alive', 'timeout=5')
          res.setHeader('x-public', 'kept')
          res.end('ok')
          return
        case '/base/odd-headers':
          res.setHeader('constructor', 'c')
          res.setHeader('toString', 't')
          res.end('odd')
          return
        case '/base/empty':
          res.writeHead(204, { 'x-empty': 'yes' })
          res.end()
          return
        case '/base/gzip':
          return encoded('gzip', gzipSync(Buffer.from(PLAIN)))
        case '/base/deflate':
          return encoded('deflate', deflateSync(Buffer.from(PLAIN)))
        case '/base/deflate-raw':
          return encoded('deflate', deflateRawSync(Buffer.from(PLAIN)))
        case '/base/br':
          return encoded('br', brotliCompressSync(Buffer.from(PLAIN)))
        case '/base/unknown-coding':
          return encoded('x-unknown', Buffer.from('raw bytes'))
        case '/base/origin-wide':
          res.writeHead(401, { ...ORIGIN_WIDE, ...ANSWER_ONLY })
          res.end('{"from":"upstream"}')
          return
        case '/base/hang':
          return // never answers
        default:
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '7' })
          res.end(req.method === 'HEAD' ? undefined : 'default')
      }
    })
  })
  upstream.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
})

afterAll(async () => {
  for (const socket of sockets) socket.destroy()
  await new Promise<void>((resolve) => upstream.close(() => resolve()))
})

beforeEach(() => {
  seen = []
})

const options = (overrides: Partial<ForwardOptions> = {}): Omit<ForwardOptions, 'fetch'> => ({
  accessToken: 'upstream-access-token',
  baseUrl: 'https://app.example.com',
  clientIp: '198.51.100.7',
  timeoutMs: 5000,
  ...overrides,
})

interface Sent {
  method?: string
  headers?: OutgoingHttpHeaders
  /** Written as is, piece by piece (the client then sends it chunked unless a length is set). */
  body?: Buffer[]
  /** Milliseconds between the pieces of `body`: a slow upload. */
  gapMs?: number
}

/**
 * Runs one request through `transport` inside a @hono/node-server app: `target` is the upstream
 * path under /base/. Resolves with what the transport answered (a Response or the error thrown).
 */
function makeFront(transport: Forwarder) {
  let server: ServerType
  let url: string
  let pending: ((outcome: Response | unknown) => void) | undefined
  let call: { target: string; options: Omit<ForwardOptions, 'fetch'> }
  let lastClient: Promise<number | 'reset'> = Promise.resolve('reset')

  const app = new Hono().all('*', async (c) => {
    try {
      pending!(await transport(c, new URL(`${origin}/base/${call.target}`), call.options))
    } catch (err) {
      pending!(err)
    }
    return c.text('captured')
  })

  return {
    async start() {
      await new Promise<void>((resolve) => {
        server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve())
      })
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    },
    stop: () =>
      new Promise<void>((resolve) => {
        ;(server as Server).closeAllConnections()
        server.close(() => resolve())
      }),
    send(target: string, sent: Sent = {}, forwardOptions = options()) {
      call = { target, options: forwardOptions }
      const outcome = new Promise<Response | unknown>((resolve) => (pending = resolve))
      const req = httpRequest(`${url}/api/${target}`, {
        method: sent.method ?? 'GET',
        headers: sent.headers,
      })
      // What the client got: the front's answer, or 'reset' if its connection was cut.
      lastClient = new Promise<number | 'reset'>((resolve) => {
        req.on('response', (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode!))
        })
        req.on('error', () => resolve('reset'))
      })
      void (async () => {
        for (const chunk of sent.body ?? []) {
          req.write(chunk)
          if (sent.gapMs) await new Promise((resolve) => setTimeout(resolve, sent.gapMs))
        }
        req.end()
      })()
      return outcome
    },
    /** What the client of the last `send` got from the front. */
    client: () => lastClient,
  }
}

async function expectBffError(outcome: unknown, status: number, code: string) {
  expect(outcome).toBeInstanceOf(BffError)
  expect((outcome as BffError).status).toBe(status)
  expect((outcome as BffError).code).toBe(code)
}

const HOSTILE_HEADERS: OutgoingHttpHeaders = {
  Accept: 'application/json',
  'X-Custom': 'kept',
  Cookie: '__Host-bff=sealed-session; other=1',
  'X-CSRF': '1',
  Authorization: 'Bearer client-supplied-token',
  Connection: 'x-secret',
  'X-Secret': 'hop-only',
  'Keep-Alive': 'timeout=99',
  TE: 'trailers',
  'Proxy-Authorization': 'Basic cHJveHk6cHc=',
  'X-Forwarded-Host': 'evil.example',
  'X-Forwarded-Proto': 'http',
  Forwarded: 'for=1.2.3.4;host=evil.example',
  'X-Forwarded-For': '203.0.113.9',
  Host: 'evil.example',
}

/** Hostile request headers, then every header a browser could forge and ordinary ones. */
const FORGED_AND_ORDINARY: OutgoingHttpHeaders = { ...HOSTILE_HEADERS, ...FORGED, ...ORDINARY }

describe('nodeForward', () => {
  const front = makeFront(nodeForward())
  beforeAll(() => front.start())
  afterAll(() => front.stop())

  it('sends the bearer token and none of what must not cross the boundary', async () => {
    const res = (await front.send('plain?x=1', { headers: HOSTILE_HEADERS })) as Response
    expect(res.status).toBe(200)
    await res.text()

    expect(seen).toHaveLength(1)
    const { headers, url, method } = seen[0]!
    expect(method).toBe('GET')
    expect(url).toBe('/base/plain?x=1')
    expect(headers.authorization).toBe('Bearer upstream-access-token')
    expect(headers.cookie).toBeUndefined()
    expect(headers['x-csrf']).toBeUndefined()
    expect(headers['x-secret']).toBeUndefined()
    expect(headers['keep-alive']).toBeUndefined()
    expect(headers.te).toBeUndefined()
    expect(headers['proxy-authorization']).toBeUndefined()
    expect(headers.forwarded).toBeUndefined()
    expect(headers.connection ?? 'keep-alive').toMatch(/^(keep-alive|close)$/i)
    expect(headers.host).toBe(new URL(origin).host)
    expect(headers['x-forwarded-host']).toBe('app.example.com')
    expect(headers['x-forwarded-proto']).toBe('https')
    // The client's X-Forwarded-For is not extended: the BFF's value is the client IP alone.
    expect(headers['x-forwarded-for']).toBe('198.51.100.7')
    expect(headers.accept).toBe('application/json')
    expect(headers['x-custom']).toBe('kept')
  })

  it('drops every header a browser could forge to steer the upstream; ordinary ones pass', async () => {
    const sent = { method: 'POST', headers: FORGED_AND_ORDINARY, body: [Buffer.from('{}')] }
    await ((await front.send('plain', sent)) as Response).text()
    const { headers } = seen[0]!
    expectForgedDroppedOrdinaryKept(headers)
    expect(headers['x-forwarded-for']).toBe('198.51.100.7')
  })

  it('adds no header the client did not send (none of what Node’s fetch would add)', async () => {
    await ((await front.send('plain', {})) as Response).text()
    const names = Object.keys(seen[0]!.headers).filter((name) => name !== 'connection')
    expect(names.sort()).toEqual([
      'authorization',
      'host',
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
    ])
  })

  it('drops upstream headers with origin-wide effect, keeping status, body and the rest', async () => {
    const res = (await front.send('origin-wide')) as Response
    expect(res.status).toBe(401)
    for (const name of Object.keys(ORIGIN_WIDE)) {
      expect([name, res.headers.get(name)]).toEqual([name, null])
    }
    for (const [name, value] of Object.entries(ANSWER_ONLY)) {
      expect([name, res.headers.get(name)]).toEqual([name, value])
    }
    expect(await res.text()).toBe('{"from":"upstream"}')
  })

  it('sets X-Forwarded-For from the client IP alone when none came in', async () => {
    const res = (await front.send(
      'plain',
      {},
      options({ baseUrl: 'http://localhost:3000' })
    )) as Response
    await res.text()
    const { headers } = seen[0]!
    expect(headers['x-forwarded-for']).toBe('198.51.100.7')
    expect(headers['x-forwarded-host']).toBe('localhost:3000')
    expect(headers['x-forwarded-proto']).toBe('http')
  })

  it('strips several headers named in Connection, whatever their case', async () => {
    const headers = { Connection: 'X-One , x-two', 'x-one': '1', 'X-Two': '2', 'x-three': '3' }
    await ((await front.send('plain', { headers })) as Response).text()
    expect(seen[0]!.headers['x-one']).toBeUndefined()
    expect(seen[0]!.headers['x-two']).toBeUndefined()
    expect(seen[0]!.headers['x-three']).toBe('3')
  })

  it('joins repeated request headers as fetch does', async () => {
    const res = (await front.send('plain', { headers: { 'x-multi': ['a', 'b'] } })) as Response
    await res.text()
    expect(seen[0]!.headers['x-multi']).toBe('a, b')
  })

  it('passes status and headers back, without the upstream Set-Cookie', async () => {
    const res = (await front.send('created', {
      method: 'POST',
      body: [Buffer.from('{}')],
    })) as Response
    expect(res.status).toBe(201)
    expect(res.headers.get('x-upstream')).toBe('yes')
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('cache-control')).toBe('private, no-cache') // marked private: see below
    expect(res.headers.get('set-cookie')).toBeNull()
    expect(res.headers.getSetCookie()).toEqual([])
    expect(await res.text()).toBe('{"id":1}')
    expect(seen[0]!.method).toBe('POST')
    expect(seen[0]!.bodyLength).toBe(2)
  })

  it('passes a 404 through', async () => {
    const res = (await front.send('missing')) as Response
    expect(res.status).toBe(404)
    expect(res.headers.getSetCookie()).toEqual([])
    expect(await res.text()).toBe('nope')
  })

  it('does not follow a redirect: the 302 goes back to the browser', async () => {
    const res = (await front.send('redirect')) as Response
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe(`${origin}/base/redirect-target`)
    await res.text()
    expect(seen.map((s) => s.url)).toEqual(['/base/redirect'])
  })

  it('strips hop-by-hop headers from the response', async () => {
    const res = (await front.send('hop')) as Response
    expect(res.headers.get('x-public')).toBe('kept')
    expect(res.headers.get('x-internal')).toBeNull()
    expect(res.headers.get('keep-alive')).toBeNull()
    expect(res.headers.get('connection')).toBeNull()
    expect(res.headers.get('transfer-encoding')).toBeNull()
    expect(await res.text()).toBe('ok')
  })

  it('answers a 204 without a body, and a HEAD with headers only', async () => {
    const empty = (await front.send('empty')) as Response
    expect(empty.status).toBe(204)
    expect(empty.headers.get('x-empty')).toBe('yes')
    expect(empty.body).toBeNull()
    const head = (await front.send('plain', { method: 'HEAD' })) as Response
    expect(head.status).toBe(200)
    expect(head.headers.get('content-length')).toBe('7')
    expect(await head.text()).toBe('')
  })

  it('streams a 5 MB body through intact both ways', async () => {
    const payload = randomBytes(5 * 1024 * 1024)
    const sent = createHash('sha256').update(payload).digest('hex')
    const res = (await front.send('echo', {
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(payload.length),
      },
      body: [payload],
    })) as Response
    expect(res.status).toBe(200)
    expect(res.headers.get('x-received-sha256')).toBe(sent)
    const received = Buffer.from(await res.arrayBuffer())
    expect(received.length).toBe(payload.length)
    expect(createHash('sha256').update(received).digest('hex')).toBe(sent)
    expect(seen[0]!.bodyLength).toBe(payload.length)
    expect(seen[0]!.bodySha256).toBe(sent)
  })

  it('sends a POST with Expect: 100-continue (curl does, for large bodies) without the Expect', async () => {
    const res = (await front.send('echo', {
      method: 'POST',
      headers: { expect: '100-continue', 'content-length': '5' },
      body: [Buffer.from('hello')],
    })) as Response
    expect(res.status).toBe(200)
    expect(await (res as Response).text()).toBe('hello')
    expect(seen[0]!.headers.expect).toBeUndefined()
  })

  it('streams a chunked request body', async () => {
    const parts = [randomBytes(64 * 1024), randomBytes(64 * 1024), randomBytes(10)]
    const sent = createHash('sha256').update(Buffer.concat(parts)).digest('hex')
    const res = (await front.send('echo', { method: 'PUT', body: parts })) as Response
    await res.arrayBuffer()
    expect(seen[0]!.method).toBe('PUT')
    expect(seen[0]!.bodySha256).toBe(sent)
    // As with fetch and a streamed body: chunked, whatever the client sent.
    expect(seen[0]!.headers['transfer-encoding']).toBe('chunked')
  })

  it('streams the response: the first chunk arrives before the upstream has finished', async () => {
    const started = performance.now()
    const res = (await front.send('slow-stream')) as Response
    const reader = res.body!.getReader()
    const first = await reader.read()
    expect(new TextDecoder().decode(first.value)).toBe('first;')
    expect(performance.now() - started).toBeLessThan(500)
    let rest = ''
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      rest += new TextDecoder().decode(next.value)
    }
    expect(rest).toBe('second')
  })

  it('drops the upstream call when the reader goes away mid-body', async () => {
    const res = (await front.send('slow-stream')) as Response
    const reader = res.body!.getReader()
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('first;')
    await reader.cancel()
    // The upstream finishes its answer into a closed connection; nothing may blow up meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 700))
  })

  for (const path of ['broken', 'broken-at-once']) {
    it(`fails the body, not the process, when the upstream breaks off (${path})`, async () => {
      const res = (await front.send(path)) as Response
      expect(res.status).toBe(200)
      await expect(res.text()).rejects.toThrow()
    })
  }

  it('answers 504 upstream_timeout when the upstream never answers', async () => {
    const started = performance.now()
    const outcome = await front.send('hang', {}, options({ timeoutMs: 300 }))
    const elapsed = performance.now() - started
    await expectBffError(outcome, 504, 'upstream_timeout')
    expect(elapsed).toBeGreaterThanOrEqual(250)
    expect(elapsed).toBeLessThan(2000)
  })

  it('answers 502 upstream_unavailable when nothing listens', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const transport = nodeForward()
    const app = makeFront((c, _target, o) => transport(c, new URL(`http://127.0.0.1:${port}/x`), o))
    await app.start()
    try {
      const outcome = await app.send('x')
      await expectBffError(outcome, 502, 'upstream_unavailable')
      expect((outcome as BffError).message).not.toContain(String(port))
      // With a request body too, and the client still gets an answer (its request is not cut).
      const posted = await app.send('x', { method: 'POST', body: [Buffer.from('{"a":1}')] })
      await expectBffError(posted, 502, 'upstream_unavailable')
      expect(await app.client()).toBe(200)
    } finally {
      await app.stop()
    }
  })

  for (const [path, name] of [
    ['gzip', 'gzip'],
    ['deflate', 'zlib deflate'],
    ['deflate-raw', 'raw deflate'],
    ['br', 'brotli'],
  ]) {
    it(`hands a ${name} response over decoded, without content-encoding`, async () => {
      const res = (await front.send(path!)) as Response
      expect(res.status).toBe(200)
      expect(res.headers.get('content-encoding')).toBeNull()
      expect(res.headers.get('content-length')).toBeNull()
      expect(await res.text()).toBe(PLAIN)
    })
  }

  for (const [upstream, browser] of [
    ['', 'private'],
    ['max-age=60', 'private, max-age=60'],
    ['no-cache', 'private, no-cache'],
    ['no-store', 'no-store'],
    ['public, max-age=60', 'public, max-age=60'],
    ['s-maxage=30', 's-maxage=30'],
    // Only a field is private here, or "public" is no directive: the answer itself is not shared.
    ['private="set-cookie", max-age=60', 'private, private="set-cookie", max-age=60'],
    ['no-cache="x, public"', 'private, no-cache="x, public"'],
    // The answer depends on the caller's token, which a cache in front of the BFF never sees.
    ['public, max-age=60&vary=Authorization', 'private, public, max-age=60'],
    ['s-maxage=30&vary=accept, authorization', 'private, s-maxage=30'],
    ['public&vary=*', 'private, public'],
    ['public&vary=Accept-Encoding', 'public'],
  ]) {
    it(`tells shared caches an answer is private unless the upstream allowed sharing: "${upstream}"`, async () => {
      // The upstream saw a bearer token (never reused by shared caches); a CDN in front of the
      // BFF sees a cookie, and could otherwise serve one user's answer to another.
      const [cc, vary] = upstream!.split('&vary=')
      const query = `cc=${encodeURIComponent(cc!)}${vary ? `&vary=${encodeURIComponent(vary)}` : ''}`
      const res = (await front.send(`cacheable?${query}`)) as Response
      expect(res.headers.get('cache-control')).toBe(browser)
    })
  }

  for (const [path, coding, encode] of [
    ['gzip', 'gzip', gzipSync],
    ['deflate', 'deflate', deflateSync],
    ['br', 'br', brotliCompressSync],
  ] as const) {
    it(`hands a ${coding} response to a browser that accepts it untouched, with its length`, async () => {
      const res = (await front.send(path, {
        headers: { 'accept-encoding': 'gzip, deflate, br, zstd' },
      })) as Response
      const sent = encode(Buffer.from(PLAIN))
      expect(res.headers.get('content-encoding')).toBe(coding)
      expect(res.headers.get('content-length')).toBe(String(sent.length))
      expect(res.headers.get('vary')).toBe('Accept-Encoding')
      expect(Buffer.from(await res.arrayBuffer()).equals(sent)).toBe(true)
      expect(seen[0]!.headers['accept-encoding']).toBe('gzip, deflate, br, zstd')
    })
  }

  it('asks the upstream only for codings the browser accepts, and for none when it sent none', async () => {
    await front.send('plain', { headers: { 'accept-encoding': 'gzip;q=0, br, compress' } })
    await front.send('plain', { headers: { 'accept-encoding': 'compress' } })
    await front.send('plain')
    expect(seen.map((request) => request.headers['accept-encoding'])).toEqual([
      'br',
      'identity',
      undefined,
    ])
  })

  it('passes a body in a coding it cannot decode on as it came, with its header', async () => {
    // Browsers ask for zstd, which Node cannot decode: without its header the body is garbage.
    const res = (await front.send('unknown-coding')) as Response
    expect(res.headers.get('content-encoding')).toBe('x-unknown')
    expect(res.headers.get('content-length')).toBe('9')
    expect(await res.text()).toBe('raw bytes')
  })
})

/** `forward` over the global fetch: the transport nodeForward must behave like. */
const viaFetch: Forwarder = (c, target, o) =>
  forward(c.req.raw, target, { ...o, fetch: globalThis.fetch })

/** A front on each transport, started and stopped with the enclosing describe. */
function frontsOnBothTransports() {
  const fronts = { node: makeFront(nodeForward()), fetch: makeFront(viaFetch) }
  beforeAll(() => Promise.all(Object.values(fronts).map((front) => front.start())))
  afterAll(() => Promise.all(Object.values(fronts).map((front) => front.stop())))
  return fronts
}

/**
 * What Node's fetch adds to a request that lacks them (see README: the fetch path); Cache-Control
 * and Pragma `no-cache` to a conditional one (If-None-Match and the like), as the Fetch standard
 * says for its cache mode.
 */
const FETCH_DEFAULTS = [
  'accept',
  'accept-encoding',
  'accept-language',
  'sec-fetch-mode',
  'user-agent',
  'cache-control',
  'pragma',
]

describe('nodeForward and fetch forward side by side', () => {
  const { node, fetch: fetched } = frontsOnBothTransports()

  for (const [name, target, sent] of [
    ['a GET with hostile headers', 'plain?q=1', { headers: HOSTILE_HEADERS }],
    ['a GET with forged and ordinary headers', 'plain', { headers: FORGED_AND_ORDINARY }],
    ['response headers with origin-wide effect', 'origin-wide', {}],
    [
      'a POST with a body',
      'created',
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: [Buffer.from('{}')],
      },
    ],
    ['a redirect', 'redirect', {}],
    ['hop-by-hop response headers', 'hop', {}],
    // Both decode a coding the browser does not accept (to one that does, only the Node
    // transport can pass it untouched: Node's fetch always decodes).
    [
      'a gzip answer to a browser that accepts only br',
      'gzip',
      { headers: { 'accept-encoding': 'br' } },
    ],
    ['an answer in a coding neither decodes', 'unknown-coding', {}],
    ['a cacheable answer', 'cacheable?cc=max-age%3D60', {}],
    ['a public answer that varies on Authorization', 'cacheable?cc=public&vary=Authorization', {}],
    ['a 404', 'missing', {}],
    [
      'headers named like Object.prototype members',
      'odd-headers',
      { headers: JSON.parse('{"constructor": "a", "toString": "b", "__proto__": "c"}') },
    ],
    ['a DELETE without a body', 'plain', { method: 'DELETE' }],
    [
      'a POST with Expect: 100-continue',
      'echo',
      { method: 'POST', headers: { expect: '100-continue' }, body: [Buffer.from('x')] },
    ],
  ] as const) {
    it(`sends and answers alike: ${name}`, async () => {
      const answers: unknown[] = []
      const upstreamSaw: Array<IncomingHttpHeaders | undefined> = []
      for (const front of [node, fetched]) {
        seen = []
        const res = await front.send(target, sent as Sent)
        answers.push(
          res instanceof Response
            ? {
                status: res.status,
                headers: [...res.headers].filter(([k]) => k !== 'date'),
                body: await res.text(),
              }
            : { error: (res as BffError).code, status: (res as BffError).status }
        )
        const headers = seen[0] && { ...seen[0].headers }
        delete headers?.connection // the transport's own keep-alive
        // Node's fetch adds these when the client sent none; the Node transport does not.
        const sentNames = Object.keys(sent.headers ?? {}).map((name) => name.toLowerCase())
        if (front === fetched) {
          for (const name of FETCH_DEFAULTS) if (!sentNames.includes(name)) delete headers?.[name]
        }
        upstreamSaw.push(headers)
      }
      expect(answers[0]).toEqual(answers[1])
      expect(upstreamSaw[0]).toEqual(upstreamSaw[1])
    })
  }
})

describe('the upstream timeout, on both transports', () => {
  const fronts = frontsOnBothTransports()

  for (const [name, front] of Object.entries(fronts)) {
    it(`does not count a slow upload that keeps coming (${name})`, async () => {
      // Six pieces 200 ms apart: over a second of upload against a 500 ms timeout, which is
      // for the upstream's answer once the request is sent.
      const parts = Array.from({ length: 6 }, () => randomBytes(1024))
      const outcome = await front.send(
        'echo',
        { method: 'POST', body: parts, gapMs: 200 },
        options({ timeoutMs: 500 })
      )
      expect(outcome).toBeInstanceOf(Response)
      const res = outcome as Response
      expect(res.status).toBe(200)
      expect((await res.arrayBuffer()).byteLength).toBe(6 * 1024)
    })

    it(`still answers 504 when the upstream does not answer a sent request (${name})`, async () => {
      const outcome = await front.send(
        'hang',
        { method: 'POST', body: [Buffer.from('x')] },
        options({ timeoutMs: 300 })
      )
      await expectBffError(outcome, 504, 'upstream_timeout')
    })
  }
})

describe('a connection lost before any answer, on both transports', () => {
  const fronts = frontsOnBothTransports()
  beforeEach(() => {
    dropArrivals = 0
    dropsLeft = 1
  })

  for (const [name, front] of Object.entries(fronts)) {
    it(`${name}: a GET is sent once more and answered`, async () => {
      const res = await front.send('drop-first')
      expect(res).toBeInstanceOf(Response)
      expect(await (res as Response).text()).toBe('answered on the second try')
      expect(dropArrivals).toBe(2)
    })

    it(`${name}: a POST is not sent again (it may have been processed): 502`, async () => {
      const outcome = await front.send('drop-first', { method: 'POST', body: [Buffer.from('x')] })
      await expectBffError(outcome, 502, 'upstream_unavailable')
      expect(dropArrivals).toBe(1)
    })

    it(`${name}: a GET whose second try fails too answers 502, after two tries`, async () => {
      const outcome = await front.send('drop')
      await expectBffError(outcome, 502, 'upstream_unavailable')
      expect(dropArrivals).toBe(2)
    })
  }
})

describe('nodeForward outside a Node server', () => {
  it('falls back to fetch when the request has no IncomingMessage (app.request)', async () => {
    const transport = nodeForward()
    const app = new Hono().all('*', (c) => transport(c, new URL(`${origin}/base/plain`), options()))
    const res = await app.request('/api/plain', { headers: { 'x-csrf': '1', cookie: 'a=b' } })
    expect(res.status).toBe(200)
    expect(await res.text()).toBe('default')
    expect(seen[0]!.headers.authorization).toBe('Bearer upstream-access-token')
    expect(seen[0]!.headers.cookie).toBeUndefined()
  })
})
