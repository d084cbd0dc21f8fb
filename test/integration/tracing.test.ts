/**
 * W3C trace context through the whole BFF (Node and workerd): the upstream and the IdP get a child
 * of the browser's `traceparent`, never the browser's own, and a new trace without one. On Node,
 * with OTEL_EXPORTER_OTLP_ENDPOINT set, the spans reach an OTLP receiver with the right parents
 * (the IdP's requests name the BFF's span for the work), and no token, cookie, code or secret is
 * in any of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { parseTraceparent } from '../../src/core/observe/trace.ts'
import { isRefreshGrant, startIdpFront, type FrontRequest } from '../helpers/idp-front.ts'
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

/** A POST the IdP got at a path ending with `path`, with `grant_type` `grantType` when given. */
const idpCall = (path: string, grantType?: string) => (req: FrontRequest) =>
  req.method === 'POST' &&
  new URL(req.url, 'http://x').pathname.endsWith(path) &&
  (!grantType || new URLSearchParams(req.body).get('grant_type') === grantType)

/** The one request the IdP got that `test` picks, and the parent its `traceparent` names. */
function oneIdpRequest(seen: FrontRequest[], test: (req: FrontRequest) => boolean) {
  const found = seen.filter(test)
  expect(found).toHaveLength(1)
  const req = found[0]!
  // The trace goes as headers only: nothing of it is left in the form.
  expect(req.body).not.toContain('trace')
  return { req, parent: parseTraceparent(req.headers.traceparent as string | undefined) }
}

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

describe(`trace context reaching the IdP (${TARGET})`, () => {
  let stack: Stack
  let front: Awaited<ReturnType<typeof startIdpFront>>
  let jar: ReturnType<Stack['jar']>
  const ACCESS_TTL = 60
  beforeAll(async () => {
    front = await startIdpFront()
    stack = await startStack({ front, accessTokenTtl: ACCESS_TTL })
    jar = stack.jar()
  })
  afterAll(async () => {
    await stack?.close()
    await front?.close()
  })

  it('the code exchange at /bff/callback is a child of the browser’s trace, never its span', async () => {
    const callback = await stack.login(jar, {
      headers: { traceparent: BROWSER, tracestate: STATE },
    })
    expect(callback.status).toBe(302)
    const { req, parent } = oneIdpRequest(front.seen, idpCall('/token', 'authorization_code'))
    expect(parent).toMatchObject({ traceId: TRACE, flags: 1 })
    expect(parent!.spanId).not.toBe(SPAN)
    expect(req.headers.tracestate).toBe(STATE)
  })

  it('a refresh grant is a child of the browser’s trace, never its span', async () => {
    stack.advance(ACCESS_TTL + 5)
    const response = await jar.get('/api/refreshing', {
      headers: { ...CSRF, traceparent: `00-${TRACE}-${SPAN}-00` },
    })
    expect(response.status).toBe(200)
    await response.text()
    const { req, parent } = oneIdpRequest(front.seen, isRefreshGrant)
    expect(parent).toMatchObject({ traceId: TRACE, flags: 0 })
    expect(parent!.spanId).not.toBe(SPAN)
    // The upstream's parent is another child: each call the BFF makes has its own.
    expect(parent!.spanId).not.toBe(parseTraceparent(lastUpstreamTrace(stack).traceparent)!.spanId)
    expect(req.headers.tracestate).toBeUndefined()
  })

  it('the revocation at logout is a child of the browser’s trace, never its span', async () => {
    const response = await jar.post('/bff/logout', {
      headers: { ...CSRF, traceparent: BROWSER },
    })
    expect(response.status).toBe(302)
    const { parent } = oneIdpRequest(front.seen, idpCall('/revocation'))
    expect(parent).toMatchObject({ traceId: TRACE, flags: 1 })
    expect(parent!.spanId).not.toBe(SPAN)
  })

  it('discovery, made for no request, carries no trace', () => {
    const discovery = front.seen.filter((req) => req.url.includes('/.well-known/'))
    expect(discovery.length).toBeGreaterThan(0)
    for (const req of discovery) expect(req.headers.traceparent).toBeUndefined()
  })
})

describe(`trace context of IdP calls openid-client retries (${TARGET})`, () => {
  let stack: Stack
  let front: Awaited<ReturnType<typeof startIdpFront>>
  beforeAll(async () => {
    front = await startIdpFront()
    stack = await startStack({
      front,
      idp: { dpopNonce: true },
      clientMetadata: { dpop_bound_access_tokens: true },
      env: { BFF_DPOP: 'true' },
    })
  })
  afterAll(async () => {
    await stack?.close()
    await front?.close()
  })

  it('the code exchange asked again with the IdP’s DPoP nonce carries the same parent', async () => {
    const callback = await stack.login(stack.jar(), { headers: { traceparent: BROWSER } })
    expect(callback.status).toBe(302)
    const exchanges = front.seen.filter(idpCall('/token', 'authorization_code'))
    // The first is refused for want of a nonce; openid-client sends it again with one.
    expect(exchanges).toHaveLength(2)
    const [first, retry] = exchanges.map((req) => req.headers.traceparent as string)
    expect(parseTraceparent(first)).toMatchObject({ traceId: TRACE, flags: 1 })
    expect(parseTraceparent(first)!.spanId).not.toBe(SPAN)
    expect(retry).toBe(first)
  })
})

describe.runIf(TARGET === 'node')('OTLP export (node)', () => {
  let stack: Stack
  let receiver: OtlpReceiver
  let front: Awaited<ReturnType<typeof startIdpFront>>
  let jar: ReturnType<Stack['jar']>
  const secrets = new Set<string>()
  const ACCESS_TTL = 60
  const LOGIN_TRACE = '11112222333344445555666677778888'

  beforeAll(async () => {
    receiver = await startOtlpReceiver()
    front = await startIdpFront()
    stack = await startStack({
      front,
      accessTokenTtl: ACCESS_TTL,
      env: {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'bff-under-test',
        OTEL_BSP_SCHEDULE_DELAY: '20',
      },
    })
    jar = stack.jar()
    const callback = await stack.login(jar, {
      headers: { traceparent: `00-${LOGIN_TRACE}-${SPAN}-01` },
    })
    // The authorization code, as the browser brought it back.
    const code = new URL(callback.url).searchParams.get('code')
    expect(code).toBeTruthy()
    secrets.add(code!)
  })
  let closed = false
  afterAll(async () => {
    if (!closed) await stack?.close()
    await receiver?.close()
    await front?.close()
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

  it('the IdP’s code exchange hangs below the callback’s request span', async () => {
    await receiver.waitFor(() => spansOf(LOGIN_TRACE).some((span) => span.kind === 2))
    const request = one(spansOf(LOGIN_TRACE), (span) => span.kind === 2)
    expect(request.name).toBe('GET /bff/callback')
    expect(request.parentSpanId).toBe(SPAN)
    const { parent } = oneIdpRequest(front.seen, idpCall('/token', 'authorization_code'))
    expect(parent).toMatchObject({ traceId: LOGIN_TRACE, spanId: request.spanId, flags: 1 })
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
    // The IdP's server span for the grant hangs below the refresh span.
    const { parent } = oneIdpRequest(front.seen, isRefreshGrant)
    expect(parent).toMatchObject({ traceId, spanId: refresh.spanId, flags: 1 })
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
    // The revocation at logout hangs below the logout's request span, the root of its trace.
    const logoutSpan = one(receiver.spans, (span) => span.name === 'GET /bff/logout')
    const { parent } = oneIdpRequest(front.seen, idpCall('/revocation'))
    expect(parent).toMatchObject({ traceId: logoutSpan.traceId, spanId: logoutSpan.spanId })
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(3)
      expect(exported.includes(secret), `a secret of ${secret.length} characters`).toBe(false)
    }
    for (const leak of ['secret=query', 'q=private', '/api/items/42', 'refreshing', 'Bearer']) {
      expect(exported).not.toContain(leak)
    }
  })
})
