/**
 * Compressed upstream answers, from outside over HTTP on each runtime (Node: the undici transport;
 * workerd: the Worker's fetch with `encodeResponseBody: "manual"`): a browser that accepts the
 * upstream's coding gets its bytes untouched (`Content-Encoding` and `Content-Length` kept), the
 * upstream is asked only for codings the browser accepts, a client that accepts none gets a plain
 * body, and a step-up challenge with a compressed body is still answered as `step_up_required`.
 *
 * node:http as the client: it sends only the headers given and hands the body over undecoded.
 * workerd: through a direct socket to a second isolate (`isolates: 1`), since the Miniflare entry
 * in front of the first one does what Cloudflare's edge does (the Worker always sees
 * `Accept-Encoding: br, gzip`, and the edge decodes for clients that accept neither); one test
 * goes through that entry too.
 */
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { brotliCompressSync, deflateSync, gunzipSync, gzipSync } from 'node:zlib'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { TARGET, startStack, type Stack } from './harness.ts'

const BODY = JSON.stringify({
  items: Array.from({ length: 3000 }, (_, i) => ({ id: i, name: `item ${i}`, done: i % 3 === 0 })),
})
const ENCODERS: Record<string, (data: Buffer) => Buffer> = {
  gzip: gzipSync,
  br: brotliCompressSync,
  deflate: deflateSync,
  // Node 20 has no zstd encoder: opaque bytes stand in, which the BFF must pass as they are.
  zstd: (data) => Buffer.concat([Buffer.from('zstd-stand-in:'), data.subarray(0, 100)]),
}
const ENCODED = Object.fromEntries(
  Object.entries(ENCODERS).map(([coding, encode]) => [coding, encode(Buffer.from(BODY))])
)

let upstream: Server
/** The Accept-Encoding each upstream request came with (undefined: none). */
const asked: Array<string | undefined> = []
let stack: Stack
/** Where the tests reach the BFF: on workerd, the second isolate's own socket. */
let bffUrl: string
let cookie: string

beforeAll(async () => {
  // `/api/negotiated`: the first coding of the request's Accept-Encoding this server knows, else
  // plain. `/api/always-<coding>`: that coding whatever was asked. `/api/challenge`: an RFC 9470
  // step-up challenge with a gzip body.
  upstream = createServer((req, res) => {
    asked.push(req.headers['accept-encoding'])
    req.resume()
    const path = new URL(req.url!, 'http://x').pathname
    const send = (
      status: number,
      coding: string | undefined,
      more: Record<string, string> = {}
    ) => {
      const body = coding ? ENCODED[coding]! : Buffer.from(BODY)
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': String(body.length),
        ...(coding ? { 'content-encoding': coding } : {}),
        ...more,
      })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    if (path === '/challenge') {
      return send(401, 'gzip', {
        'www-authenticate':
          'Bearer error="insufficient_user_authentication", acr_values="mfa", max_age="300"',
      })
    }
    const always = /^\/always-(\w+)$/.exec(path)?.[1]
    if (always) return send(200, always)
    const accepted = (req.headers['accept-encoding'] ?? '')
      .split(',')
      .map((part) => part.split(';')[0]!.trim())
      .find((coding) => coding in ENCODERS)
    send(200, accepted, { vary: 'Accept-Encoding' })
  })
  upstream.keepAliveTimeout = 5000
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  stack = await startStack({
    env: { BFF_API: `/api/=${upstreamUrl}/` },
    ...(TARGET === 'workerd' ? { isolates: 1 } : {}),
  })
  bffUrl = TARGET === 'workerd' ? stack.isolateUrls[0]! : stack.url
  const jar = stack.jar()
  expect((await stack.login(jar, { user: 'compression' })).status).toBe(302)
  cookie = Object.entries(jar.cookies(stack.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
})

afterAll(async () => {
  await stack?.close()
  upstream?.closeAllConnections()
  await new Promise((resolve) => upstream?.close(resolve))
})

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  /** The bytes as they came over the wire (chunked framing removed, nothing decoded). */
  body: Buffer
}

/** One GET (or `method`) with the session, X-CSRF and `headers` only; the body undecoded. */
function get(
  path: string,
  headers: Record<string, string> = {},
  { method = 'GET', base = bffUrl } = {}
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}${path}`,
      { method, headers: { cookie, 'x-csrf': '1', ...headers } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('end', () =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) })
        )
        res.on('error', reject)
      }
    )
    req.on('error', reject)
    req.end()
  })
}

/** The Accept-Encoding of the last upstream request. */
function lastAsked(): string | undefined {
  return asked[asked.length - 1]
}

for (const coding of ['gzip', 'br', 'deflate', 'zstd']) {
  it(`passes a ${coding} answer to a browser that accepts it untouched, with its length`, async () => {
    const answer = await get('/api/negotiated', { 'accept-encoding': `${coding}, identity` })
    expect(answer.status).toBe(200)
    expect(answer.headers['content-encoding']).toBe(coding)
    // The very bytes the upstream sent: nothing decoded, nothing compressed again.
    expect(answer.body.equals(ENCODED[coding]!)).toBe(true)
    expect(answer.headers['content-length']).toBe(String(ENCODED[coding]!.length))
    expect(answer.headers['transfer-encoding']).toBeUndefined()
    expect(answer.headers.vary).toMatch(/accept-encoding/i)
    // The upstream was asked for that coding only, as the browser did.
    expect(lastAsked()).toBe(coding)
  })
}

it('hands a gzip answer to a browser over a fraction of the bytes, decodable to the body', async () => {
  const answer = await get('/api/negotiated', { 'accept-encoding': 'gzip, deflate, br, zstd' })
  expect(answer.headers['content-encoding']).toBe('gzip')
  expect(answer.body.length).toBe(ENCODED.gzip!.length)
  expect(answer.body.length).toBeLessThan(BODY.length / 5)
  expect(gunzipSync(answer.body).toString()).toBe(BODY)
  expect(lastAsked()).toBe('gzip, deflate, br, zstd')
})

it('gives a client that sends no Accept-Encoding a plain body, and asks the upstream for none', async () => {
  const answer = await get('/api/negotiated')
  expect(answer.status).toBe(200)
  expect(answer.headers['content-encoding']).toBeUndefined()
  expect(answer.body.toString()).toBe(BODY)
  expect(answer.headers['content-length']).toBe(String(Buffer.byteLength(BODY)))
  // Node sends none (nothing the browser did not send); the Worker says `identity`, or its fetch
  // would be free to pick.
  expect(lastAsked() ?? 'identity').toBe('identity')
})

it('asks the upstream only for codings the browser accepts and the BFF can pass', async () => {
  await get('/api/negotiated', { 'accept-encoding': 'gzip;q=0, br;q=0.8, compress' })
  expect(lastAsked()).toBe('br;q=0.8')
  await get('/api/negotiated', { 'accept-encoding': 'compress, identity' })
  expect(lastAsked()).toBe('identity')
  await get('/api/negotiated', { 'accept-encoding': '*;q=0.5, gzip' })
  expect(lastAsked()).toBe('gzip, br;q=0.5, zstd;q=0.5, deflate;q=0.5')
})

for (const [name, headers] of [
  ['sends no Accept-Encoding', {}],
  ['accepts only br', { 'accept-encoding': 'br' }],
] as const) {
  it(`decodes a gzip answer the upstream sent unasked for a client that ${name}`, async () => {
    const answer = await get('/api/always-gzip', headers)
    expect(answer.status).toBe(200)
    expect(answer.headers['content-encoding']).toBeUndefined()
    expect(answer.body.toString()).toBe(BODY)
  })
}

it('answers a HEAD in the coding a GET would get, with its length', async () => {
  const answer = await get('/api/negotiated', { 'accept-encoding': 'gzip' }, { method: 'HEAD' })
  expect(answer.status).toBe(200)
  expect(answer.headers['content-encoding']).toBe('gzip')
  expect(answer.headers['content-length']).toBe(String(ENCODED.gzip!.length))
  expect(answer.body.length).toBe(0)
})

it('still answers an upstream step-up challenge with a gzip body as step_up_required', async () => {
  const answer = await get('/api/challenge', { 'accept-encoding': 'gzip' })
  expect(answer.status).toBe(401)
  expect(answer.headers['www-authenticate']).toBeUndefined()
  expect(answer.headers['content-encoding']).toBeUndefined()
  const body = JSON.parse(answer.body.toString()) as { error: string; acr: string[] }
  expect(body.error).toBe('step_up_required')
  expect(body.acr).toEqual(['mfa'])
})

it.runIf(TARGET === 'workerd')(
  "through the edge's stand-in, a client that accepts gzip still gets the upstream's gzip bytes",
  async () => {
    const answer = await get('/api/negotiated', { 'accept-encoding': 'gzip' }, { base: stack.url })
    expect(answer.headers['content-encoding']).toBe('gzip')
    expect(gunzipSync(answer.body).toString()).toBe(BODY)
    expect(answer.body.length).toBeLessThan(BODY.length / 5)
  }
)
