/**
 * W3C trace context through the whole BFF (Node and workerd): the upstream gets a child of the
 * browser's `traceparent`, never the browser's own, and a new trace without one. On Node, with
 * OTEL_EXPORTER_OTLP_ENDPOINT set, the spans reach an OTLP receiver with the right parents, and
 * no token, cookie, code or secret is in any of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { parseTraceparent } from '../../src/core/observe/trace.ts'
import {
  startOtlpReceiver,
  type OtlpReceiver,
  type ReceivedSpan,
} from '../helpers/otlp-receiver.ts'
import { CSRF, TARGET, startStack, type Stack } from './harness.ts'

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const SPAN = '00f067aa0ba902b7'
const BROWSER = `00-${TRACE}-${SPAN}-01`
const STATE = 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE'

/** The traceparent and tracestate the upstream got for the last proxied call. */
function lastUpstreamTrace(stack: Stack) {
  const { headers } = stack.upstream.requests.at(-1)!
  return { traceparent: headers.traceparent as string, tracestate: headers.tracestate }
}

describe(`trace context reaching the upstream (${TARGET})`, () => {
  let stack: Stack
  let jar: ReturnType<Stack['jar']>
  beforeAll(async () => {
    stack = await startStack()
    jar = stack.jar()
    await stack.login(jar)
  })
  afterAll(() => stack?.close())

  const call = async (headers: Record<string, string> = {}) => {
    const response = await jar.get('/api/items?secret=query', { headers: { ...CSRF, ...headers } })
    expect(response.status).toBe(200)
    await response.text()
    return lastUpstreamTrace(stack)
  }

  it('continues the browser’s trace with a child span, flags and tracestate kept', async () => {
    const { traceparent, tracestate } = await call({ traceparent: BROWSER, tracestate: STATE })
    expect(traceparent).not.toBe(BROWSER)
    const child = parseTraceparent(traceparent)!
    expect(child).toMatchObject({ traceId: TRACE, flags: 1 })
    expect(child.spanId).not.toBe(SPAN)
    expect(tracestate).toBe(STATE)
  })

  it('keeps an unsampled flag', async () => {
    const { traceparent } = await call({ traceparent: `00-${TRACE}-${SPAN}-00` })
    expect(traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`))
  })

  it('a new span id on every call of the same trace', async () => {
    const first = await call({ traceparent: BROWSER })
    const second = await call({ traceparent: BROWSER })
    expect(first.traceparent).not.toBe(second.traceparent)
  })

  it('starts a new trace without a traceparent', async () => {
    const first = parseTraceparent((await call()).traceparent)!
    const second = parseTraceparent((await call()).traceparent)!
    expect(first.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(first.traceId).not.toBe(second.traceId)
    expect(lastUpstreamTrace(stack).tracestate).toBeUndefined()
  })

  it.each([
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['a short span id', `00-${TRACE}-${SPAN.slice(2)}-01`],
  ])('ignores an invalid traceparent (%s) and its tracestate: a new trace', async (_, value) => {
    const { traceparent, tracestate } = await call({ traceparent: value, tracestate: STATE })
    expect(traceparent).not.toBe(value)
    const child = parseTraceparent(traceparent)!
    expect(child.traceId).not.toBe(TRACE)
    expect(child.traceId).not.toBe('0'.repeat(32))
    expect(tracestate).toBeUndefined()
  })
})

describe.runIf(TARGET === 'node')('OTLP export (node)', () => {
  let stack: Stack
  let receiver: OtlpReceiver
  let jar: ReturnType<Stack['jar']>
  const secrets = new Set<string>()
  const ACCESS_TTL = 60

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    stack = await startStack({
      accessTokenTtl: ACCESS_TTL,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'bff-under-test',
        OTEL_BSP_SCHEDULE_DELAY: '20',
      },
    })
    jar = stack.jar()
    const callback = await stack.login(jar)
    // The authorization code, as the browser brought it back.
    const code = new URL(callback.url).searchParams.get('code')
    expect(code).toBeTruthy()
    secrets.add(code!)
  })
  let closed = false
  afterAll(async () => {
    if (!closed) await stack?.close()
    await receiver?.close()
  })

  /** Everything of the session worth stealing: tokens, cookie values, the user id. */
  async function collectSecrets() {
    const session = await stack.sessionOf(jar)
    if (session) {
      for (const value of [session.accessToken, session.refreshToken, session.idToken, session.sid])
        if (value) secrets.add(value)
      secrets.add(session.sub)
    }
    for (const value of Object.values(jar.cookies(stack.url))) secrets.add(value)
  }

  const spansOf = (traceId: string) => receiver.spans.filter((span) => span.traceId === traceId)
  const one = (spans: ReceivedSpan[], test: (span: ReceivedSpan) => boolean) => {
    const found = spans.filter(test)
    expect(found).toHaveLength(1)
    return found[0]!
  }

  it('exports the request, session load and upstream spans, parented as the calls were', async () => {
    await collectSecrets()
    const response = await jar.get('/api/items/42?q=private', {
      headers: { ...CSRF, traceparent: BROWSER, tracestate: STATE },
    })
    expect(response.status).toBe(200)
    await response.text()
    const upstream = parseTraceparent(lastUpstreamTrace(stack).traceparent)!

    await receiver.waitFor(() => spansOf(TRACE).some((span) => span.kind === 2))
    const spans = spansOf(TRACE)
    const request = one(spans, (span) => span.kind === 2)
    expect(request.name).toBe('GET /api/')
    expect(request.parentSpanId).toBe(SPAN)
    expect(request.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.route': '/api/',
      'http.response.status_code': 200,
    })
    expect(request.service).toBe('bff-under-test')

    const client = one(spans, (span) => span.kind === 3)
    expect(client.name).toBe('GET /api/')
    expect(client.parentSpanId).toBe(request.spanId)
    // What the upstream was told its parent is: the BFF's client span.
    expect(upstream.spanId).toBe(client.spanId)
    expect(client.attributes['http.response.status_code']).toBe(200)

    const load = one(spans, (span) => span.name === 'bff.session.load')
    expect(load.parentSpanId).toBe(request.spanId)
    expect(load.attributes).toMatchObject({
      'bff.session.store': 'cookie',
      'bff.session.found': true,
    })
  })

  it('a request without a traceparent is the root of a new trace', async () => {
    const response = await jar.get('/bff/user', { headers: CSRF })
    expect(response.status).toBe(200)
    await response.text()
    await receiver.waitFor((spans) => spans.some((span) => span.name === 'GET /bff/user'))
    const root = receiver.spans.find((span) => span.name === 'GET /bff/user')!
    expect(root.parentSpanId).toBe('')
    expect(root.traceId).not.toBe(TRACE)
    expect(root.attributes['http.route']).toBe('/bff/user')
  })

  it('exports the refresh grant as a span of the request that made it', async () => {
    stack.advance(ACCESS_TTL + 5)
    const traceId = 'aaaabbbbccccddddeeeeffff00001111'
    const response = await jar.get('/api/refreshing', {
      headers: { ...CSRF, traceparent: `00-${traceId}-${SPAN}-01` },
    })
    expect(response.status).toBe(200)
    await response.text()
    await collectSecrets()
    await receiver.waitFor(() => spansOf(traceId).some((span) => span.kind === 2))
    const spans = spansOf(traceId)
    const request = one(spans, (span) => span.kind === 2)
    const refresh = one(spans, (span) => span.name === 'bff.token.refresh')
    expect(refresh.parentSpanId).toBe(request.spanId)
    expect(refresh.attributes).toMatchObject({ 'bff.idp': 'default', 'bff.token.kind': 'session' })
    expect(refresh.status?.code ?? 0).not.toBe(2)
  })

  it('no span carries a token, cookie, code, secret, user id, query or raw path', async () => {
    const user = (await (await jar.get('/bff/user', { headers: CSRF })).json()) as {
      logoutUrl: string
    }
    await collectSecrets()
    const logout = await jar.get(user.logoutUrl)
    expect(logout.status).toBe(302)
    // What must never appear, whatever span it would be in.
    secrets.add(stack.secret)
    secrets.add(DEMO_BFF_CLIENT.clientSecret)
    // Closing flushes what is still queued.
    closed = true
    await stack.close()
    // The code, the session secret, the client secret, three tokens, sid, sub, cookie values.
    expect(secrets.size).toBeGreaterThanOrEqual(9)
    const exported = receiver.bodies.join('\n')
    expect(receiver.spans.length).toBeGreaterThan(8)
    expect(receiver.spans.some((span) => span.name === 'GET /bff/logout')).toBe(true)
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(3)
      expect(exported.includes(secret), `a secret of ${secret.length} characters`).toBe(false)
    }
    for (const leak of ['secret=query', 'q=private', '/api/items/42', 'refreshing', 'Bearer']) {
      expect(exported).not.toContain(leak)
    }
  })
})
