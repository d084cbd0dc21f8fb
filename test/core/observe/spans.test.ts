/**
 * The core's spans through `createBff` with an in-memory `Tracer` (the core's own interface, as
 * a tracing library would implement it): names stay bounded, failures carry their code, and the
 * upstream's traceparent is the client span's. Without a tracer, the upstream still gets a child.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBff } from '../../../src/index.ts'
import {
  childContext,
  parseTraceparent,
  type SpanAttributes,
  type TraceContext,
  type Tracer,
} from '../../../src/core/observe/trace.ts'
import { silentLogger } from '../../../src/core/observe/log.ts'
import { freePort } from '../../helpers/upstream.ts'

const ORIGIN = 'https://app.example.com'
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN = '00f067aa0ba902b7'

interface Recorded {
  name: string
  kind: string
  parent?: TraceContext
  context: TraceContext
  attributes: SpanAttributes
  error?: string
  ended: boolean
}

function memoryTracer(): Tracer & { spans: Recorded[] } {
  const spans: Recorded[] = []
  return {
    spans,
    startSpan(name, { kind, parent, attributes }) {
      const span: Recorded = {
        name,
        kind,
        parent,
        context: childContext(parent),
        attributes: { ...attributes },
        ended: false,
      }
      spans.push(span)
      return {
        context: span.context,
        setAttributes: (more) => Object.assign(span.attributes, more),
        updateName: (newName) => (span.name = newName),
        end(error) {
          span.error = error
          span.ended = true
        },
      }
    },
  }
}

let upstreamUrl: string
const seen: IncomingHttpHeaders[] = []
const upstream = createServer((req, res) => {
  seen.push(req.headers)
  res.writeHead(req.url?.includes('fail') ? 503 : 200).end('{}')
})
beforeAll(async () => {
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/`
})
afterAll(() => new Promise((resolve) => upstream.close(resolve)))

async function bff(tracer?: Tracer) {
  const closed = `http://127.0.0.1:${await freePort()}/`
  const app = createBff(
    {
      issuer: `http://127.0.0.1:${await freePort()}`,
      clientId: 'spa',
      clientSecret: 'client-secret',
      baseUrl: ORIGIN,
      sessionSecret: 'a'.repeat(40),
      routes: [
        { prefix: '/open/', upstream: upstreamUrl, token: 'none' },
        { prefix: '/down/', upstream: closed, token: 'none' },
      ],
    },
    { log: silentLogger, ...(tracer ? { tracer } : {}) }
  )
  const get = (path: string, headers: Record<string, string> = {}) =>
    app.request(`${ORIGIN}${path}`, { headers: { 'x-csrf': '1', ...headers } })
  return { get }
}

describe('spans of createBff', () => {
  it('names the request span by route prefix, never by the path asked for', async () => {
    const tracer = memoryTracer()
    const { get } = await bff(tracer)
    const response = await get('/open/users/qz42?token=secret', {
      traceparent: `00-${TRACE}-${SPAN}-01`,
    })
    expect(response.status).toBe(200)
    const [server, client] = tracer.spans
    expect(server).toMatchObject({ name: 'GET /open/', kind: 'server', ended: true })
    expect(server!.parent).toMatchObject({ traceId: TRACE, spanId: SPAN, remote: true })
    expect(server!.attributes).toEqual({
      'http.request.method': 'GET',
      'http.route': '/open/',
      'http.response.status_code': 200,
    })
    expect(client).toMatchObject({ name: 'GET /open/', kind: 'client', ended: true })
    expect(client!.parent).toEqual(server!.context)
    const sent = parseTraceparent(seen.at(-1)!.traceparent as string)!
    expect(sent.spanId).toBe(client!.context.spanId)
    // No hex digits only: span and trace ids are hex, and '42' alone turned up in one.
    expect(JSON.stringify(tracer.spans)).not.toMatch(/users|qz42|secret/)
  })

  it('marks a failed upstream call with its code, and a 5xx answer with its status', async () => {
    const tracer = memoryTracer()
    const { get } = await bff(tracer)
    expect((await get('/down/x')).status).toBe(502)
    const [server, client] = tracer.spans
    expect(client).toMatchObject({ kind: 'client', error: 'upstream_unavailable', ended: true })
    expect(server).toMatchObject({ name: 'GET /down/', error: '502', ended: true })
    expect(server!.attributes['http.response.status_code']).toBe(502)

    tracer.spans.length = 0
    expect((await get('/open/fail')).status).toBe(503)
    expect(tracer.spans.map((span) => span.error)).toEqual(['503', '503'])
  })

  it('an address nothing serves gets the method alone; a BFF endpoint its name', async () => {
    const tracer = memoryTracer()
    const { get } = await bff(tracer)
    expect((await get('/bff/no-such-endpoint/x')).status).toBe(404)
    expect((await get('/nowhere/else')).status).toBe(404)
    expect((await get('/bff/user')).status).toBe(401)
    expect(tracer.spans.filter((s) => s.kind === 'server').map((s) => s.name)).toEqual([
      'GET',
      'GET',
      'GET /bff/user',
    ])
    expect(tracer.spans.every((span) => span.ended)).toBe(true)
  })

  it('without a tracer, the upstream still gets a child of the request’s trace', async () => {
    const { get } = await bff()
    await get('/open/a', { traceparent: `00-${TRACE}-${SPAN}-00`, tracestate: 'k=v' })
    expect(seen.at(-1)!.traceparent).toMatch(new RegExp(`^00-${TRACE}-(?!${SPAN})[0-9a-f]{16}-00$`))
    expect(seen.at(-1)!.tracestate).toBe('k=v')
    await get('/open/b', { traceparent: 'garbage', tracestate: 'k=v' })
    expect(parseTraceparent(seen.at(-1)!.traceparent as string)?.traceId).not.toBe(TRACE)
    expect(seen.at(-1)!.tracestate).toBeUndefined()
  })
})
