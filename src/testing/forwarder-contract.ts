/**
 * The contract every `Forwarder` (the transport the API proxy sends upstream calls through) meets,
 * like `testStore` for stores: `forward` over fetch and the Node transport pass it, and so must a
 * transport you bring. It runs on Node under vitest: a real upstream on loopback, and the forwarder
 * inside a Hono app served by @hono/node-server, as the BFF serves it.
 */
import { serve, type ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import { createHash } from 'node:crypto'
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type Server,
} from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { BffError } from '../core/errors.ts'
import type { Forwarder, ForwardOptions } from '../core/proxy/forward.ts'
import type { StepUp } from '../core/policy/step-up.ts'
import {
  ANSWER_ONLY,
  FORGED,
  ORDINARY,
  ORIGIN_WIDE,
  expectForgedDroppedOrdinaryKept,
} from './proxy-headers.ts'

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  bodySha256: string
}

const BIG = 5 * 1024 * 1024
const TOKEN = 'contract-access-token'

/** Starts the upstream every case talks to; each path is one behaviour. */
async function startUpstream(seen: Seen[]) {
  const sockets = new Set<Socket>()
  const server: Server = createServer((req, res) => {
    const hash = createHash('sha256')
    req.on('data', (chunk: Buffer) => hash.update(chunk))
    req.on('end', () => {
      const bodySha256 = hash.digest('hex')
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, bodySha256 })
      switch (new URL(req.url!, 'http://upstream').pathname) {
        case '/base/echo-digest':
          res.writeHead(200, { 'content-type': 'text/plain' })
          return res.end(bodySha256)
        case '/base/big':
          res.writeHead(200, { 'content-type': 'application/octet-stream' })
          return res.end(Buffer.alloc(BIG, 7))
        case '/base/cookie':
          res.writeHead(201, { 'set-cookie': ['a=1; Path=/', 'b=2'], 'x-upstream': 'yes' })
          return res.end('{"id":1}')
        case '/base/origin-wide':
          res.writeHead(401, { ...ORIGIN_WIDE, ...ANSWER_ONLY })
          return res.end('{"from":"upstream"}')
        case '/base/step-up':
          // RFC 9470, among another challenge, in two header lines.
          res.writeHead(401, {
            'www-authenticate': [
              'Basic realm="upstream"',
              'Bearer error="insufficient_user_authentication", acr_values="mfa", max_age=300',
            ],
          })
          return res.end('{"from":"upstream"}')
        case '/base/redirect':
          res.writeHead(302, { location: '/base/elsewhere' })
          return res.end()
        case '/base/hop':
          res.writeHead(200, { connection: 'x-internal', 'x-internal': 'no', 'x-public': 'kept' })
          return res.end('ok')
        case '/base/missing':
          res.writeHead(404, { 'content-type': 'text/plain' })
          return res.end('nope')
        case '/base/empty':
          res.writeHead(204)
          return res.end()
        case '/base/hang':
          return // never answers
        default:
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '7' })
          return res.end('default')
      }
    })
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

/**
 * Runs the forwarder contract against `makeForwarder()`: what crosses to the upstream, what comes
 * back to the browser, an RFC 9470 step-up challenge reported through `onStepUp`, streaming both
 * ways, and the 502/504 answers (as thrown `BffError`s).
 */
export function testForwarder(name: string, makeForwarder: () => Forwarder): void {
  describe(`Forwarder contract: ${name}`, () => {
    const seen: Seen[] = []
    let upstream: Awaited<ReturnType<typeof startUpstream>>
    let front: ServerType
    let frontUrl: string
    let options: Omit<ForwardOptions, 'fetch'>
    let targetOrigin: string
    /** What the forwarder reported through `onStepUp`. */
    const stepUps: StepUp[] = []

    beforeAll(async () => {
      upstream = await startUpstream(seen)
      const forwarder = makeForwarder()
      const app = new Hono().all('/api/*', async (c) => {
        const target = new URL(`${targetOrigin}/base/${c.req.path.slice('/api/'.length)}`)
        target.search = new URL(c.req.url).search
        try {
          return await forwarder(c, target, options)
        } catch (err) {
          if (!(err instanceof BffError)) throw err
          return c.json({ error: err.code }, err.status)
        }
      })
      await new Promise<void>((resolve) => {
        front = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve())
      })
      frontUrl = `http://127.0.0.1:${(front.address() as AddressInfo).port}`
    })

    afterAll(async () => {
      await new Promise<void>((resolve) => {
        ;(front as Server).closeAllConnections()
        front.close(() => resolve())
      })
      await upstream.close()
    })

    beforeEach(() => {
      seen.length = 0
      stepUps.length = 0
      targetOrigin = upstream.origin
      options = {
        accessToken: TOKEN,
        baseUrl: 'https://app.example.com',
        clientIp: '198.51.100.7',
        timeoutMs: 5000,
        onStepUp: (stepUp) => stepUps.push(stepUp),
      }
    })

    const send = (path: string, init?: RequestInit) => fetch(`${frontUrl}/api/${path}`, init)

    it('sends the bearer token, the BFF’s forwarding headers, and no cookie or CSRF header', async () => {
      const res = await send('plain?x=1', {
        headers: {
          cookie: '__Host-bff=sealed; other=1',
          'x-csrf': '1',
          authorization: 'Bearer from-the-browser',
          'proxy-authorization': 'Basic eDp5',
        },
      })
      expect(await res.text()).toBe('default')
      const { headers, url } = seen[0]!
      expect(url).toBe('/base/plain?x=1')
      expect(headers.authorization).toBe(`Bearer ${TOKEN}`)
      expect(headers.cookie).toBeUndefined()
      expect(headers['x-csrf']).toBeUndefined()
      expect(headers['proxy-authorization']).toBeUndefined()
      expect(headers['x-forwarded-host']).toBe('app.example.com')
      expect(headers['x-forwarded-proto']).toBe('https')
      expect(headers['x-forwarded-for']).toBe('198.51.100.7')
    })

    it('sends no Authorization at all without a token, not even the browser’s', async () => {
      // A route with token "none" (or "optional" without a session) calls without a token.
      options = { ...options }
      delete options.accessToken
      const res = await send('plain', {
        headers: { authorization: 'Bearer from-the-browser', 'x-csrf': '1' },
      })
      expect(await res.text()).toBe('default')
      const { headers } = seen[0]!
      expect(headers.authorization).toBeUndefined()
      expect(headers['x-csrf']).toBeUndefined()
      expect(headers['x-forwarded-host']).toBe('app.example.com')
    })

    it('sends the BFF’s trace context in place of the browser’s', async () => {
      const bff = '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01'
      options = { ...options, trace: { traceparent: bff, tracestate: 'bff=1' } }
      const res = await send('plain', {
        headers: { traceparent: FORGED.traceparent!, tracestate: 'browser=1' },
      })
      expect(await res.text()).toBe('default')
      expect(seen[0]!.headers.traceparent).toBe(bff)
      expect(seen[0]!.headers.tracestate).toBe('bff=1')
      // Without the BFF's, none at all.
      options = { ...options, trace: undefined }
      await (await send('plain', { headers: { traceparent: FORGED.traceparent! } })).text()
      expect(seen[1]!.headers.traceparent).toBeUndefined()
    })

    it('drops every header a browser could forge to steer the upstream; ordinary ones pass', async () => {
      await (await send('plain', { headers: { ...FORGED, ...ORDINARY } })).text()
      expectForgedDroppedOrdinaryKept(seen[0]!.headers)
    })

    it('drops headers the client named in Connection', async () => {
      // fetch will not send a Connection header; a raw request does, as browsers' proxies may.
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${frontUrl}/api/plain`, {
          headers: { connection: 'keep-alive, x-secret', 'x-secret': 'hop-only' },
        })
        req.on('response', (res) => res.resume().on('end', resolve))
        req.on('error', reject)
        req.end()
      })
      expect(seen[0]!.headers['x-secret']).toBeUndefined()
    })

    it('drops upstream Set-Cookie and headers with origin-wide effect; the rest passes', async () => {
      const created = await send('cookie', { method: 'POST', body: '{}' })
      expect(created.status).toBe(201)
      expect(created.headers.get('set-cookie')).toBeNull()
      expect(created.headers.get('x-upstream')).toBe('yes')
      expect(await created.text()).toBe('{"id":1}')

      const res = await send('origin-wide')
      expect(res.status).toBe(401)
      for (const header of Object.keys(ORIGIN_WIDE))
        expect([header, res.headers.get(header)]).toEqual([header, null])
      for (const [header, value] of Object.entries(ANSWER_ONLY)) {
        expect([header, res.headers.get(header)]).toEqual([header, value])
      }
    })

    it('reports an RFC 9470 step-up challenge through onStepUp, and strips it too', async () => {
      const res = await send('step-up')
      expect(res.status).toBe(401)
      expect(res.headers.get('www-authenticate')).toBeNull()
      expect(await res.text()).toBe('{"from":"upstream"}')
      expect(stepUps).toEqual([{ acr: ['mfa'], maxAge: 300 }])
      // Any other challenge is no step-up.
      await (await send('origin-wide')).text()
      expect(stepUps).toHaveLength(1)
    })

    it('strips hop-by-hop headers from the answer', async () => {
      const res = await send('hop')
      expect(res.headers.get('x-internal')).toBeNull()
      expect(res.headers.get('x-public')).toBe('kept')
      await res.text()
    })

    it('passes a 404 and a 204 through, and does not follow a redirect', async () => {
      const missing = await send('missing')
      expect([missing.status, await missing.text()]).toEqual([404, 'nope'])
      const empty = await send('empty', { method: 'DELETE' })
      expect([empty.status, await empty.text()]).toEqual([204, ''])
      const redirect = await send('redirect', { redirect: 'manual' })
      expect(redirect.status).toBe(302)
      expect(seen.map((s) => s.url)).not.toContain('/base/elsewhere')
    })

    it('answers a HEAD with headers only', async () => {
      const res = await send('plain', { method: 'HEAD' })
      expect(res.status).toBe(200)
      expect(await res.text()).toBe('')
      expect(seen[0]!.method).toBe('HEAD')
    })

    it('streams a 5 MB body through intact both ways', async () => {
      const body = new Uint8Array(BIG).map((_, i) => (i * 31) % 251)
      const up = await send('echo-digest', { method: 'PUT', body })
      expect(await up.text()).toBe(createHash('sha256').update(body).digest('hex'))
      const down = await send('big')
      expect((await down.arrayBuffer()).byteLength).toBe(BIG)
    })

    it('answers 504 upstream_timeout when the upstream never answers', async () => {
      options = { ...options, timeoutMs: 300 }
      const res = await send('hang')
      expect([res.status, await res.json()]).toEqual([504, { error: 'upstream_timeout' }])
    }, 10_000)

    it('answers 502 upstream_unavailable when nothing listens', async () => {
      const closed = createServer()
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
      const port = (closed.address() as AddressInfo).port
      await new Promise<void>((resolve) => closed.close(() => resolve()))
      targetOrigin = `http://127.0.0.1:${port}`
      const res = await send('plain')
      expect([res.status, await res.json()]).toEqual([502, { error: 'upstream_unavailable' }])
    })
  })
}
