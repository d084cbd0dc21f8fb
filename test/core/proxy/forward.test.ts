import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { ApiRoute } from '../../../src/core/config/env.ts'
import { BffError } from '../../../src/core/errors.ts'
import fc from 'fast-check'
import {
  DEFAULT_METHODS,
  forward,
  matchRoute,
  requestPath,
  upstreamUrl,
  type ForwardOptions,
} from '../../../src/core/proxy/forward.ts'
import { requestHeaderStripped, responseHeaderStripped } from '../../../src/core/proxy/headers.ts'
import { createBff, parseConfig } from '../../../src/index.ts'
import {
  ANSWER_ONLY,
  FORGED,
  ORDINARY,
  ORIGIN_WIDE,
  expectForgedDroppedOrdinaryKept,
} from '../../helpers/proxy-headers.ts'

const route = (prefix: string, upstream: string): ApiRoute => ({
  prefix,
  upstream: new URL(upstream),
})

// Longest prefix first, as parseConfig sorts them.
const ROUTES: readonly ApiRoute[] = [
  route('/api/v2/', 'http://127.0.0.1:4002/v2/'),
  route('/api/', 'http://127.0.0.1:4000/base/'),
  route('/root/', 'http://127.0.0.1:4001/'),
]
const API = ROUTES[1]!

/** The URL a runtime (Node's Request, workerd) hands the app for a raw request target. */
const requestUrl = (raw: string) => new URL(raw, 'http://bff.test')

function expectInvalidPath(fn: () => unknown) {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  expect(caught).toBeInstanceOf(BffError)
  expect((caught as BffError).status).toBe(400)
  expect((caught as BffError).code).toBe('invalid_path')
}

describe('matchRoute', () => {
  it('picks the longest matching prefix', () => {
    expect(matchRoute(ROUTES, '/api/v2/items')?.prefix).toBe('/api/v2/')
    expect(matchRoute(ROUTES, '/api/v1/items')?.prefix).toBe('/api/')
    expect(matchRoute(ROUTES, '/api/')?.prefix).toBe('/api/')
    expect(matchRoute(ROUTES, '/root/x')?.prefix).toBe('/root/')
  })

  it('matches whole segments only', () => {
    expect(matchRoute(ROUTES, '/apifoo/x')).toBeUndefined()
    expect(matchRoute(ROUTES, '/api')).toBeUndefined()
    expect(matchRoute(ROUTES, '/api/v2')?.prefix).toBe('/api/')
    expect(matchRoute(ROUTES, '/bff/user')).toBeUndefined()
    expect(matchRoute(ROUTES, '/')).toBeUndefined()
  })
})

// Request targets that try to leave the /api/ prefix, encoded or not.
const escapes = [
  '/api/%2e%2e/secret',
  '/api/%2E%2E/secret',
  '/api/.%2e/secret',
  '/api/../secret',
  '/api/a/../../secret',
  '/api/..%2fsecret',
  '/api/%2e%2e%2fsecret',
  '/api/%2E%2E%2Fsecret',
  '/api/a%2f..%2f..%2fsecret',
  '/api/..%5csecret',
  '/api/..%5Csecret',
  '/api/..\\secret',
  '/api/..;/secret',
  '/api/%2e%2e;x/secret',
  '/api/%252e%252e/secret',
  '/api/%00',
  '/api/a%00b',
  '/api/%0d%0aHost:%20evil',
  '/api/%zz',
  '/api/%E0%A4%A',
  '/api/v2/%2e%2e/%2e%2e/base/secret',
]

describe('upstreamUrl', () => {
  it('maps the rest of the path and the query onto the upstream', () => {
    expect(upstreamUrl(API, requestUrl('/api/a/b?x=1')).href).toBe(
      'http://127.0.0.1:4000/base/a/b?x=1'
    )
    expect(upstreamUrl(API, requestUrl('/api/')).href).toBe('http://127.0.0.1:4000/base/')
  })

  it('keeps harmless encoded characters as they are', () => {
    expect(upstreamUrl(API, requestUrl('/api/a%20b/c%2Bd?q=%26')).href).toBe(
      'http://127.0.0.1:4000/base/a%20b/c%2Bd?q=%26'
    )
  })

  /**
   * Runs a raw request target the way the app does: runtime URL parsing, route match, then
   * upstreamUrl. Returns how it was stopped, or the upstream URL it produced.
   */
  function resolve(raw: string): URL | 'no_route' | 'invalid_path' {
    const url = requestUrl(raw)
    const matched = matchRoute(ROUTES, url.pathname)
    if (!matched) return 'no_route'
    try {
      return upstreamUrl(matched, url)
    } catch (err) {
      expect(err).toBeInstanceOf(BffError)
      expect((err as BffError).status).toBe(400)
      expect((err as BffError).code).toBe('invalid_path')
      return 'invalid_path'
    }
  }

  for (const raw of escapes) {
    it(`never escapes the upstream prefix for ${raw}`, () => {
      const result = resolve(raw)
      if (result instanceof URL) {
        const matched = matchRoute(ROUTES, requestUrl(raw).pathname)!
        expect(result.origin).toBe(matched.upstream.origin)
        expect(result.pathname.startsWith(matched.upstream.pathname)).toBe(true)
        // A server on the way may decode once more: that must not climb out either.
        const decodedOnce = decodeURIComponent(result.pathname)
        expect(decodedOnce.split('/')).not.toContain('..')
        expect(decodedOnce).not.toMatch(/[\\\u0000-\u001f]/)
        expect(decodedOnce.slice(matched.upstream.pathname.length)).not.toMatch(/(^|\/)\.\.;/)
      }
    })
  }

  // Encoded separators survive WHATWG parsing: upstreamUrl itself must refuse them with a 400.
  for (const raw of [
    '/api/..%2fsecret',
    '/api/%2e%2e%2fsecret',
    '/api/a%2f..%2f..%2fsecret',
    '/api/..%5csecret',
    '/api/..;/secret',
    '/api/%00',
    '/api/%zz',
  ]) {
    it(`answers 400 invalid_path for ${raw}`, () => {
      const url = requestUrl(raw)
      expect(url.pathname.startsWith('/api/')).toBe(true)
      expectInvalidPath(() => upstreamUrl(API, url))
    })
  }

  it('stops /api/%2e%2e/secret before it reaches the upstream', () => {
    // The parser resolves the encoded dots first, so the request is no longer under /api/.
    const url = requestUrl('/api/%2e%2e/secret')
    expect(matchRoute(ROUTES, url.pathname)).toBeUndefined()
  })

  for (const raw of [
    '/api//evil.com/x',
    '/api/\\\\evil.com/x',
    '/api/@evil.com/x',
    '/api/:@evil.com',
  ]) {
    it(`keeps ${raw} on the upstream origin`, () => {
      const target = upstreamUrl(API, requestUrl(raw))
      expect(target.origin).toBe('http://127.0.0.1:4000')
      expect(target.host).toBe('127.0.0.1:4000')
      expect(target.pathname.startsWith('/base/')).toBe(true)
    })
  }

  it('keeps //evil.com on the upstream origin when the upstream path is /', () => {
    const rootRoute = ROUTES[2]!
    const target = upstreamUrl(rootRoute, requestUrl('/root//evil.com/x'))
    expect(target.origin).toBe('http://127.0.0.1:4001')
    expect(target.pathname).toBe('//evil.com/x')
  })
})

describe('requestPath', () => {
  const same = (href: string) => {
    const url = new URL(href)
    expect(requestPath(href), href).toEqual({ pathname: url.pathname, search: url.search })
  }

  it('reads pathname and search as URL does', () => {
    for (const raw of [
      '/',
      '/api/a/b?x=1',
      '/api/?',
      '/api/#frag',
      '/api/x#frag?not-a-query',
      '/api/x?q=1#frag',
      '/api/x?#',
      '/api/%2e%2e/secret',
      '/api/..%2fsecret?x=%3F#y',
      '/api//evil.com/x',
      '/api/\\evil.com/x',
      '/api/a%20b/c%2Bd?q=%26',
    ]) {
      same(new URL(raw, 'http://bff.test').href)
      same(new URL(raw, 'https://[::1]:8443').href)
    }
  })

  it('reads any request URL as URL does (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 60 }), fc.boolean(), (raw, ipv6) => {
        const base = ipv6 ? 'http://[::1]:3000' : 'http://127.0.0.1:3000'
        let href: string
        try {
          href = new URL(`/${raw}`, base).href
        } catch {
          return
        }
        if (!href.startsWith(base)) return // `//host` and the like: another origin, not a path
        same(href)
      }),
      { numRuns: 2000 }
    )
  })

  it('gives upstreamUrl what URL gives it, for every escape attempt', () => {
    for (const raw of [...escapes, '/api/a/b?x=1', '/api/items.json', '/api/a;b/c', '/root/x']) {
      const href = requestUrl(raw).href
      const matched = matchRoute(ROUTES, new URL(href).pathname)
      if (!matched) continue
      const outcome = (url: Pick<URL, 'pathname' | 'search'>) => {
        try {
          return upstreamUrl(matched, url).href
        } catch (err) {
          return (err as BffError).code
        }
      }
      expect(outcome(requestPath(href)), raw).toBe(outcome(new URL(href)))
    }
  })
})

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  bodySha256: string
  bodyLength: number
}

describe('forward', () => {
  let server: Server
  let origin: string
  let seen: Seen[] = []
  const sockets = new Set<Socket>()

  beforeAll(async () => {
    server = createServer((req, res) => {
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
        const path = new URL(req.url!, 'http://upstream').pathname
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
          case '/base/gzip': {
            const compressed = gzipSync(Buffer.from('hello, decoded world '.repeat(100)))
            res.writeHead(200, {
              'content-type': 'text/plain',
              'content-encoding': 'gzip',
              'content-length': String(compressed.length),
            })
            res.end(compressed)
            return
          }
          case '/base/origin-wide':
            res.writeHead(401, { ...ORIGIN_WIDE, ...ANSWER_ONLY })
            res.end('{"from":"upstream"}')
            return
          case '/base/hang':
            return // never answers
          default:
            res.writeHead(200, { 'content-type': 'text/plain' })
            res.end('default')
        }
      })
    })
    server.on('connection', (socket) => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  beforeEach(() => {
    seen = []
  })

  const options = (overrides: Partial<ForwardOptions> = {}): ForwardOptions => ({
    accessToken: 'upstream-access-token',
    baseUrl: 'https://app.example.com',
    clientIp: '198.51.100.7',
    timeoutMs: 5000,
    fetch: globalThis.fetch,
    ...overrides,
  })

  const target = (path: string) => new URL(`${origin}/base/${path}`)

  it('sends the bearer token and none of what must not cross the boundary', async () => {
    const request = new Request('https://app.example.com/api/plain?x=1', {
      headers: {
        Accept: 'application/json',
        'X-Custom': 'kept',
        Cookie: '__Host-bff=sealed-session; other=1',
        'X-CSRF': '1',
        Authorization: 'Bearer client-supplied-token',
        Connection: 'x-secret',
        'X-Secret': 'hop-only',
        'Keep-Alive': 'timeout=99',
        TE: 'trailers',
        Upgrade: 'websocket',
        'Proxy-Authorization': 'Basic cHJveHk6cHc=',
        'X-Forwarded-Host': 'evil.example',
        'X-Forwarded-Proto': 'http',
        Forwarded: 'for=1.2.3.4;host=evil.example',
        'X-Forwarded-For': '203.0.113.9',
        Host: 'evil.example',
      },
    })
    const res = await forward(request, target('plain?x=1'), options())
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
    expect(headers.upgrade).toBeUndefined()
    expect(headers['proxy-authorization']).toBeUndefined()
    expect(headers.forwarded).toBeUndefined()
    // The transport may add its own Connection: keep-alive; the client's value must not pass.
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
    const request = new Request('https://app.example.com/api/plain', {
      method: 'POST',
      headers: { ...FORGED, ...ORDINARY },
      body: '{}',
    })
    await (await forward(request, target('plain'), options())).text()
    const { headers } = seen[0]!
    expectForgedDroppedOrdinaryKept(headers)
    expect(headers['x-forwarded-for']).toBe('198.51.100.7')
    expect(headers['x-forwarded-host']).toBe('app.example.com')
    expect(headers['x-forwarded-proto']).toBe('https')
  })

  it('sends no X-Forwarded-For at all, not the client’s, when the client IP is unknown', async () => {
    const request = new Request('https://app.example.com/api/plain', {
      headers: { 'x-forwarded-for': '203.0.113.9' },
    })
    await (await forward(request, target('plain'), options({ clientIp: undefined }))).text()
    expect(seen[0]!.headers['x-forwarded-for']).toBeUndefined()
  })

  it('drops upstream headers with origin-wide effect, keeping status, body and the rest', async () => {
    const res = await forward(
      new Request('https://app.example.com/api/origin-wide'),
      target('origin-wide'),
      options()
    )
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
    const res = await forward(new Request('http://localhost:3000/api/plain'), target('plain'), {
      ...options({ baseUrl: 'http://localhost:3000' }),
    })
    await res.text()
    const { headers } = seen[0]!
    expect(headers['x-forwarded-for']).toBe('198.51.100.7')
    expect(headers['x-forwarded-host']).toBe('localhost:3000')
    expect(headers['x-forwarded-proto']).toBe('http')
  })

  it('strips several headers named in Connection, whatever their case', async () => {
    const request = new Request('https://app.example.com/api/plain', {
      headers: { Connection: 'X-One , x-two', 'x-one': '1', 'X-Two': '2', 'x-three': '3' },
    })
    await (await forward(request, target('plain'), options())).text()
    const { headers } = seen[0]!
    expect(headers['x-one']).toBeUndefined()
    expect(headers['x-two']).toBeUndefined()
    expect(headers['x-three']).toBe('3')
  })

  it('passes status and headers back, without the upstream Set-Cookie', async () => {
    const res = await forward(
      new Request('https://app.example.com/api/created', { method: 'POST', body: '{}' }),
      target('created'),
      options()
    )
    expect(res.status).toBe(201)
    expect(res.headers.get('x-upstream')).toBe('yes')
    expect(res.headers.get('content-type')).toBe('application/json')
    expect(res.headers.get('cache-control')).toBe('private, no-cache') // no shared cache may keep it
    expect(res.headers.get('set-cookie')).toBeNull()
    expect(res.headers.getSetCookie()).toEqual([])
    expect(await res.text()).toBe('{"id":1}')
  })

  it('passes a 404 through', async () => {
    const res = await forward(
      new Request('https://app.example.com/api/missing'),
      target('missing'),
      options()
    )
    expect(res.status).toBe(404)
    expect(res.headers.getSetCookie()).toEqual([])
    expect(await res.text()).toBe('nope')
  })

  it('does not follow a redirect: the 302 goes back to the browser', async () => {
    const res = await forward(
      new Request('https://app.example.com/api/redirect'),
      target('redirect'),
      options()
    )
    expect(res.status).toBe(302)
    expect(res.headers.get('location')).toBe(`${origin}/base/redirect-target`)
    await res.text()
    expect(seen.map((s) => s.url)).toEqual(['/base/redirect'])
  })

  it('strips hop-by-hop headers from the response', async () => {
    const res = await forward(
      new Request('https://app.example.com/api/hop'),
      target('hop'),
      options()
    )
    expect(res.headers.get('x-public')).toBe('kept')
    expect(res.headers.get('x-internal')).toBeNull()
    expect(res.headers.get('keep-alive')).toBeNull()
    expect(res.headers.get('connection')).toBeNull()
    expect(res.headers.get('transfer-encoding')).toBeNull()
    expect(await res.text()).toBe('ok')
  })

  it('streams a 5 MB body through intact both ways', async () => {
    const payload = randomBytes(5 * 1024 * 1024)
    const sent = createHash('sha256').update(payload).digest('hex')
    const request = new Request('https://app.example.com/api/echo', {
      method: 'POST',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(payload.length),
      },
      body: payload,
    })
    const res = await forward(request, target('echo'), options())
    expect(res.status).toBe(200)
    expect(res.headers.get('x-received-sha256')).toBe(sent)
    const received = Buffer.from(await res.arrayBuffer())
    expect(received.length).toBe(payload.length)
    expect(createHash('sha256').update(received).digest('hex')).toBe(sent)
    expect(seen[0]!.bodyLength).toBe(payload.length)
    expect(seen[0]!.bodySha256).toBe(sent)
  })

  it('streams a request body given as a ReadableStream', async () => {
    const parts = [randomBytes(64 * 1024), randomBytes(64 * 1024), randomBytes(10)]
    const sent = createHash('sha256').update(Buffer.concat(parts)).digest('hex')
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(new Uint8Array(part))
        controller.close()
      },
    })
    const request = new Request('https://app.example.com/api/echo', {
      method: 'PUT',
      body,
      duplex: 'half',
    } as RequestInit)
    const res = await forward(request, target('echo'), options())
    await res.arrayBuffer()
    expect(seen[0]!.method).toBe('PUT')
    expect(seen[0]!.bodySha256).toBe(sent)
  })

  it('answers 504 upstream_timeout when the upstream never answers', async () => {
    const started = performance.now()
    let caught: unknown
    try {
      await forward(
        new Request('https://app.example.com/api/hang'),
        target('hang'),
        options({ timeoutMs: 300 })
      )
    } catch (err) {
      caught = err
    }
    const elapsed = performance.now() - started
    expect(caught).toBeInstanceOf(BffError)
    expect((caught as BffError).status).toBe(504)
    expect((caught as BffError).code).toBe('upstream_timeout')
    expect(elapsed).toBeGreaterThanOrEqual(250)
    expect(elapsed).toBeLessThan(2000)
  })

  it('answers 502 upstream_unavailable when nothing listens', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))

    let caught: unknown
    try {
      await forward(
        new Request('https://app.example.com/api/x'),
        new URL(`http://127.0.0.1:${port}/x`),
        options()
      )
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(BffError)
    expect((caught as BffError).status).toBe(502)
    expect((caught as BffError).code).toBe('upstream_unavailable')
    // The client-facing message never carries the cause.
    expect((caught as BffError).message).not.toContain(String(port))
  })

  it('hands a gzip response over decoded, without content-encoding', async () => {
    const res = await forward(
      new Request('https://app.example.com/api/gzip'),
      target('gzip'),
      options()
    )
    expect(res.status).toBe(200)
    expect(res.headers.get('content-encoding')).toBeNull()
    const length = res.headers.get('content-length')
    const text = await res.text()
    expect(text).toBe('hello, decoded world '.repeat(100))
    if (length !== null) expect(Number(length)).toBe(Buffer.byteLength(text))
  })
})

describe('the header rules both transports apply', () => {
  it.each([
    'x-forwarded-anything',
    'x-forwarded',
    'cf-access-jwt-assertion',
    'fastly-ssl',
    'x-original-whatever',
    'x-http-method',
    'x-client-cert-chain',
    'ssl-client-s-dn',
    'x-ssl-cipher',
    'x-envoy-internal',
    'x-amzn-oidc-data',
    'x-ms-client-principal-name',
    'x-goog-authenticated-user-email',
    'x-appengine-user-ip',
    'x-auth-request-email',
    'proxy-client-ip',
    'proxy',
    'cookie',
    'authorization',
    // The BFF sends its own child of the request's trace context instead.
    'traceparent',
    'tracestate',
  ])('drops the request header %s', (name) => {
    expect(requestHeaderStripped(name)).toBe(true)
  })

  it.each([
    'accept',
    'content-type',
    'if-none-match',
    'x-request-id',
    'x-client-version',
    'x-custom-thing',
    'x-forwarding-note',
    'proxyish',
  ])('keeps the request header %s', (name) => {
    expect(requestHeaderStripped(name)).toBe(false)
  })

  it.each(['access-control-max-age', 'sec-session-challenge', 'attribution-reporting-info', 'nel'])(
    'drops the response header %s',
    (name) => {
      expect(responseHeaderStripped(name)).toBe(true)
    }
  )

  it.each([
    'cache-control',
    'content-security-policy',
    'cross-origin-opener-policy',
    'cross-origin-embedder-policy',
    'cross-origin-resource-policy',
    'timing-allow-origin',
    'refresh',
    'location',
  ])('keeps the response header %s', (name) => {
    expect(responseHeaderStripped(name)).toBe(false)
  })
})

describe('the API route’s methods', () => {
  // Through app.request, where a Request keeps any method token as it is (Node's and workerd's
  // HTTP servers refuse lower-case and unknown methods themselves: test/integration shows both).
  const calls: string[] = []
  const bff = createBff(
    parseConfig({
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'spa',
      BFF_CLIENT_SECRET: 'secret',
      BFF_BASE_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: 'a'.repeat(40),
      BFF_API: '/api/=https://api.example.com/',
    }),
    {
      log: () => {},
      forward: async (c) => {
        calls.push(c.req.method)
        return new Response('upstream')
      },
    }
  )

  it('are GET, HEAD, POST, PUT, PATCH and DELETE by default', () => {
    expect([...DEFAULT_METHODS]).toEqual(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'])
  })

  it.each(['patch', 'Patch', 'BREW', 'PROPFIND', 'OPTIONS', 'M-SEARCH'])(
    'refuse %s with 405 and Allow before the session is looked at',
    async (method) => {
      const response = await bff.request('https://app.example.com/api/x', {
        method,
        headers: { 'x-csrf': '1' },
      })
      expect(response.status).toBe(405)
      expect(response.headers.get('allow')).toBe('GET, HEAD, POST, PUT, PATCH, DELETE')
      expect(await response.json()).toEqual({
        error: 'method_not_allowed',
        message: 'This method is not allowed here.',
      })
      expect(calls).toEqual([])
    }
  )

  it('still asks for X-CSRF first', async () => {
    const response = await bff.request('https://app.example.com/api/x', { method: 'PROPFIND' })
    expect(response.status).toBe(403)
  })
})
