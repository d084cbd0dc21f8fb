/**
 * What crosses the proxy, end to end on each runtime (Node: the undici transport; workerd: the
 * Worker's fetch): headers a browser could forge to steer an upstream stay behind, upstream headers
 * acting on the BFF's whole origin stay behind, nothing is added the browser did not send, and
 * only ordinary methods reach the upstream. A recording upstream shows what arrived.
 */
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
} from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CookieJar } from '../helpers/http.ts'
import { ANSWER_ONLY, FORGED, ORDINARY, ORIGIN_WIDE, SET_BY_BFF } from '../helpers/proxy-headers.ts'
import { CSRF, TARGET, startStack, type Stack } from './harness.ts'

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
}

let upstream: Server
const seen: Seen[] = []
let stack: Stack
const ADMIN_TOKEN = 'admin-token-'.repeat(4)

beforeAll(async () => {
  // Records each request; `/status/<n>` answers <n> with every header above, anything else 200.
  upstream = createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, headers: req.headers })
    req.resume()
    req.on('end', () => {
      const status = Number(/^\/status\/(\d{3})/.exec(req.url!)?.[1] ?? 200)
      res.writeHead(status, { ...ORIGIN_WIDE, ...ANSWER_ONLY })
      res.end(req.method === 'HEAD' ? undefined : '{"from":"upstream"}')
    })
  })
  upstream.keepAliveTimeout = 5000
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  stack = await startStack({
    env: { BFF_API: `/api/=${upstreamUrl}/`, BFF_ADMIN_TOKEN: ADMIN_TOKEN },
  })
})

afterAll(async () => {
  await stack?.close()
  upstream.closeAllConnections()
  await new Promise((resolve) => upstream.close(resolve))
})

async function loggedIn(): Promise<CookieJar> {
  const jar = stack.jar()
  expect((await stack.login(jar, { user: 'headers' })).status).toBe(302)
  return jar
}

/** The jar's cookies as one Cookie header, for requests sent outside the jar. */
function cookieHeader(jar: CookieJar): string {
  return Object.entries(jar.cookies(stack.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

interface Answer {
  status: number | 'reset'
  headers?: IncomingHttpHeaders
  body?: string
}

/**
 * One request with node:http, which sends only the headers given (plus Host and Connection) and
 * any token as the method; 'reset' when the server cuts the connection instead of answering.
 */
function send(method: string, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve) => {
    const req = httpRequest(`${stack.url}${path}`, { method, headers })
    req.on('response', (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }))
    })
    // CONNECT: node:http hands any answer over as a tunnel.
    req.on('connect', (res, socket) => {
      socket.destroy()
      resolve({ status: res.statusCode! })
    })
    req.on('error', () => resolve({ status: 'reset' }))
    req.end()
  })
}

describe('upstream response headers with origin-wide effect', () => {
  it.each([200, 401, 302])(
    'never reach the browser; status, body and the answer’s own headers do (%i)',
    async (status) => {
      const jar = await loggedIn()
      const response = await jar.get(`/api/status/${status}`, { headers: CSRF })
      expect(response.status).toBe(status)
      for (const name of Object.keys(ORIGIN_WIDE)) {
        expect([name, response.headers.get(name)]).toEqual([name, null])
      }
      for (const [name, value] of Object.entries(ANSWER_ONLY)) {
        expect([name, response.headers.get(name)]).toEqual([name, value])
      }
      expect(await response.text()).toBe('{"from":"upstream"}')
    }
  )
})

describe('request headers', () => {
  it('a forged header never reaches the upstream; ordinary ones do; X-Forwarded-* are the BFF’s', async () => {
    const jar = await loggedIn()
    seen.length = 0
    const response = await jar.post('/api/forged', {
      headers: { ...CSRF, ...FORGED, ...ORDINARY },
      body: '{}',
    })
    expect(response.status).toBe(200)
    await response.text()
    expect(seen).toHaveLength(1)
    const { headers } = seen[0]!
    for (const name of Object.keys(FORGED).filter((name) => !SET_BY_BFF.includes(name))) {
      expect([name, headers[name]]).toEqual([name, undefined])
    }
    for (const [name, value] of Object.entries(ORDINARY)) {
      expect([name, headers[name]]).toEqual([name, value])
    }
    // The browser's traceparent is replaced by the BFF's child of it (test/integration/tracing).
    expect(headers.traceparent).not.toBe(FORGED.traceparent)
    expect(headers.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/)
    expect(headers['x-forwarded-host']).toBe(new URL(stack.baseUrl).host)
    expect(headers['x-forwarded-proto']).toBe('http')
    // The client's X-Forwarded-For is neither kept nor extended: the BFF's is the client IP alone
    // (on Workers, CF-Connecting-IP: set by Cloudflare's edge; under wrangler dev, by the client).
    expect(headers['x-forwarded-for']).toBe(TARGET === 'node' ? '127.0.0.1' : '198.51.100.99')
    expect(headers.authorization).toMatch(/^Bearer /)
  })

  it('the upstream gets no header the browser did not send', async () => {
    const jar = await loggedIn()
    seen.length = 0
    // A bare client: no Accept, User-Agent, Accept-Language, Accept-Encoding or Sec-Fetch-*.
    const answer = await send('GET', '/api/bare', { cookie: cookieHeader(jar), 'x-csrf': '1' })
    expect(answer.status).toBe(200)
    expect(seen).toHaveLength(1)
    const names = Object.keys(seen[0]!.headers).sort()
    const own = [
      'authorization',
      'host',
      // The BFF's child of the request's trace (a new trace here), never the browser's.
      'traceparent',
      'x-forwarded-for',
      'x-forwarded-host',
      'x-forwarded-proto',
    ]
    // workerd's fetch adds Accept-Encoding (and decodes the answer) and CF-Worker, the Worker's
    // zone, as Cloudflare does on every subrequest. Connection is the transport's own.
    const added = TARGET === 'workerd' ? ['accept-encoding', 'cf-worker'] : []
    expect(names.filter((name) => name !== 'connection')).toEqual([...own, ...added].sort())
  })
})

describe('headers named in Connection', () => {
  // Miniflare, as these tests run workerd, shows the Worker the client's Connection header;
  // `wrangler dev` does not, and there such a header passes (README, "What differs from Node").
  it('stay at the BFF', async () => {
    const jar = await loggedIn()
    seen.length = 0
    const answer = await send('GET', '/api/hop', {
      ...CSRF,
      cookie: cookieHeader(jar),
      connection: 'keep-alive, X-Hop',
      'x-hop': 'for the next hop only',
    })
    expect(answer.status).toBe(200)
    expect(seen).toHaveLength(1)
    expect(seen[0]!.headers['x-hop']).toBeUndefined()
  })
})

describe('methods', () => {
  it.each(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'])('%s is proxied', async (method) => {
    const jar = await loggedIn()
    seen.length = 0
    const answer = await send(method, '/api/m', { ...CSRF, cookie: cookieHeader(jar) })
    expect(answer.status).toBe(200)
    expect(seen.map((r) => r.method)).toEqual([method])
  })

  // Methods each runtime hands to the app: the proxy answers 405 itself, before any session work
  // (without a session too: not 401), and the upstream sees nothing.
  it.each([
    'TRACE',
    'OPTIONS',
    'PROPFIND',
    'PROPPATCH',
    'MKCOL',
    'COPY',
    'MOVE',
    'LOCK',
    'UNLOCK',
    'SEARCH',
    'PURGE',
  ])('%s answers 405 method_not_allowed with Allow', async (method) => {
    const jar = await loggedIn()
    seen.length = 0
    for (const headers of [{ ...CSRF, cookie: cookieHeader(jar) }, { ...CSRF }]) {
      const answer = await send(method, '/api/m', headers)
      expect(answer.status).toBe(405)
      expect(answer.headers!.allow).toBe('GET, HEAD, POST, PUT, PATCH, DELETE')
      expect(JSON.parse(answer.body!)).toMatchObject({ error: 'method_not_allowed' })
    }
    expect(seen).toEqual([])
  })

  // Methods neither runtime's HTTP server takes (lower-case ones, unknown tokens, CONNECT): Node
  // answers 400 or closes the connection, workerd 501 (500 for CONNECT). Either way, no upstream.
  it.each(['TRACK', 'BREW', 'patch', 'Get', 'CONNECT'])(
    '%s is refused before the proxy and never reaches the upstream',
    async (method) => {
      const jar = await loggedIn()
      seen.length = 0
      const answer = await sendRaw(method, '/api/m', { ...CSRF, cookie: cookieHeader(jar) })
      if (answer.status !== 'reset') expect(answer.status).toBeGreaterThanOrEqual(400)
      expect(seen).toEqual([])
    }
  )
})

/**
 * The method exactly as given (node:http upper-cases it), on a connection of its own; resolves with
 * the answer's status and head once the head has come, or 'reset' if the server closed instead.
 */
function sendRaw(
  method: string,
  path: string,
  headers: Record<string, string>
): Promise<{ status: number | 'reset'; head: string }> {
  const lines = [`${method} ${path} HTTP/1.1`, `host: ${new URL(stack.url).host}`]
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`)
  return new Promise((resolve) => {
    const socket = connect(Number(new URL(stack.url).port), '127.0.0.1')
    let received = ''
    socket.on('connect', () => socket.write(`${lines.join('\r\n')}\r\n\r\n`))
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1')
      const end = received.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.destroy()
      const head = received.slice(0, end)
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]), head })
    })
    socket.on('error', () => {})
    socket.on('close', () => resolve({ status: 'reset', head: '' }))
  })
}

describe('case-insensitive checks', () => {
  it('refuses Sec-Fetch-Site: Cross-Site, however it is spelt', async () => {
    const jar = await loggedIn()
    seen.length = 0
    for (const value of ['Cross-Site', 'CROSS-SITE']) {
      const response = await jar.post('/api/x', {
        headers: { ...CSRF, 'sec-fetch-site': value },
        body: '{}',
      })
      expect(response.status).toBe(403)
      expect(await response.json()).toMatchObject({ error: 'csrf' })
    }
    expect(seen).toEqual([])
  })

  it('takes the admin token with the scheme spelt "bearer"', async () => {
    // The cookie store can end a user's sessions (not list them): DELETE answers 200.
    const admin = (authorization: string) =>
      fetch(`${stack.url}/bff/admin/sessions?sub=nobody`, {
        method: 'DELETE',
        headers: { authorization },
      })
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      const response = await admin(`${scheme} ${ADMIN_TOKEN}`)
      expect([scheme, response.status]).toEqual([scheme, 200])
    }
    expect((await admin(`bearer ${ADMIN_TOKEN}x`)).status).toBe(401)
  })
})
