/**
 * `/bff/metrics` end to end, on Node and in workerd, against the real IdP: a scripted session
 * (login, API calls, a refresh, a CSRF refusal, a policy denial, logouts) moves each metric by
 * what happened; 10 000 random paths and methods leave the label sets bounded; the endpoint's
 * 404 / 401 / 200; no token, cookie or secret in the output.
 */
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { confirmIdpLogout } from '../helpers/idp-login.ts'
import { isRefreshGrant, startIdpFront, type IdpFront } from '../helpers/idp-front.ts'
import { CSRF, SERVER_STORE, TARGET, startStack, type Stack } from './harness.ts'

const METRICS_TOKEN = randomBytes(32).toString('base64url')
const ADMIN_TOKEN = randomBytes(32).toString('base64url')
const IDP = 'corp'

/** `name{labels}` -> value, as rendered: one entry per series. */
type Scrape = Map<string, number>

function parse(text: string): Scrape {
  const series: Scrape = new Map()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const at = line.lastIndexOf(' ')
    series.set(line.slice(0, at), Number(line.slice(at + 1)))
  }
  return series
}

describe(`metrics (${TARGET})`, () => {
  let stack: Stack

  beforeAll(async () => {
    stack = await startStack({
      store: SERVER_STORE,
      accessTokenTtl: 60,
      env: {
        BFF_METRICS_TOKEN: METRICS_TOKEN,
        BFF_ADMIN_TOKEN: ADMIN_TOKEN,
        TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret,
      },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          [IDP]: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
          },
        },
        routes: [
          { prefix: '/api/', upstream: `${upstream}/` },
          // Nobody has the role: every call is a policy denial.
          { prefix: '/admin-api/', upstream: `${upstream}/`, require: { roles: 'admin' } },
        ],
      }),
    })
  })
  afterAll(() => stack?.close())

  async function scrape(authorization = `Bearer ${METRICS_TOKEN}`): Promise<Response> {
    return fetch(`${stack.url}/bff/metrics`, { headers: { authorization } })
  }

  async function metrics(): Promise<{ text: string; series: Scrape }> {
    const response = await scrape()
    expect(response.status).toBe(200)
    const text = await response.text()
    return { text, series: parse(text) }
  }

  /** How much each series moved between two scrapes (absent before: from 0). */
  const moved = (before: Scrape, after: Scrape, name: string) =>
    (after.get(name) ?? 0) - (before.get(name) ?? 0)

  it('moves each metric by what a scripted session did, and shows no secret', async () => {
    const { series: before } = await metrics()
    // Each series of a bounded label set exists, at 0, before anything happened.
    expect(before.get(`bff_logins_total{idp="${IDP}",result="success"}`)).toBe(0)
    expect(before.get(`bff_token_refreshes_total{idp="${IDP}",result="error"}`)).toBe(0)
    expect(before.get('bff_logouts_total{kind="backchannel"}')).toBe(0)
    expect(before.get('bff_csrf_rejections_total')).toBe(0)

    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    for (let i = 0; i < 3; i++) {
      const response = await jar.get(`/api/orders/${i}`, { headers: CSRF })
      expect(response.status).toBe(200)
      await response.text()
    }
    // The access token expires: the next call refreshes it at the IdP.
    stack.idp.resetCounters()
    stack.advance(61)
    expect((await jar.get('/api/after-refresh', { headers: CSRF })).status).toBe(200)
    expect(stack.idp.grants.refresh).toBe(1)
    // Refused before the upstream: no X-CSRF, then a route whose claims alice lacks.
    expect((await jar.post('/api/orders', { json: {} })).status).toBe(403)
    expect((await jar.get('/admin-api/x', { headers: CSRF })).status).toBe(403)

    // What must never show: the session's tokens and cookie, the BFF's secrets.
    const session = (await stack.sessionOf(jar))!
    const secrets = [
      session.accessToken,
      session.refreshToken!,
      session.idToken!,
      session.id,
      session.sub,
      ...Object.values(jar.cookies(stack.url)),
      stack.secret,
      DEMO_BFF_CLIENT.clientSecret,
      METRICS_TOKEN,
      ADMIN_TOKEN,
    ]

    // An admin ends another session of alice's; then alice logs out herself.
    const other = stack.jar()
    await stack.login(other)
    const ended = await fetch(
      `${stack.url}/bff/admin/sessions?sub=${encodeURIComponent(session.sub)}&idp=${IDP}&sid=${encodeURIComponent((await stack.sessionOf(other))!.sid)}`,
      { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }
    )
    expect(ended.status).toBe(200)
    // Bob logs out at the IdP, which tells the BFF through the back channel.
    const bob = stack.jar()
    await stack.login(bob, { user: 'bob' })
    stack.idp.resetCounters()
    await confirmIdpLogout(bob, `${stack.idp.issuer}/session/end`)
    expect(stack.idp.backchannel).toEqual({ success: 1, error: 0 })
    expect((await jar.post('/bff/logout', { headers: CSRF })).status).toBe(302)

    const { text, series: after } = await metrics()
    const delta = (name: string) => moved(before, after, name)
    expect(delta(`bff_logins_total{idp="${IDP}",result="success"}`)).toBe(3)
    expect(delta(`bff_logins_total{idp="${IDP}",result="refused"}`)).toBe(0)
    expect(delta(`bff_token_refreshes_total{idp="${IDP}",result="success"}`)).toBe(1)
    expect(delta(`bff_token_refreshes_total{idp="${IDP}",result="error"}`)).toBe(0)
    expect(delta('bff_csrf_rejections_total')).toBe(1)
    expect(delta('bff_policy_denials_total{route="/admin-api/",reason="forbidden"}')).toBe(1)
    expect(delta('bff_logouts_total{kind="user"}')).toBe(1)
    expect(delta('bff_logouts_total{kind="admin"}')).toBe(1)
    expect(delta('bff_logouts_total{kind="backchannel"}')).toBe(1)
    expect(delta('bff_session_store_errors_total{store="' + storeKind() + '"}')).toBe(0)

    // Requests by route, method and status; the latency histogram counts the same requests.
    expect(delta('bff_http_requests_total{route="/api/",method="GET",status="200"}')).toBe(4)
    expect(delta('bff_http_requests_total{route="/api/",method="POST",status="403"}')).toBe(1)
    expect(delta('bff_http_requests_total{route="/admin-api/",method="GET",status="403"}')).toBe(1)
    expect(delta('bff_http_requests_total{route="/bff/login",method="GET",status="302"}')).toBe(3)
    expect(delta('bff_http_requests_total{route="/bff/callback",method="GET",status="302"}')).toBe(
      3
    )
    expect(
      delta('bff_http_requests_total{route="/bff/backchannel",method="POST",status="200"}')
    ).toBe(1)
    expect(delta('bff_http_requests_total{route="/bff/logout",method="POST",status="302"}')).toBe(1)
    expect(delta('bff_http_requests_total{route="/bff/admin",method="DELETE",status="200"}')).toBe(
      1
    )
    expect(delta('bff_http_request_duration_seconds_count{route="/api/"}')).toBe(5)
    expect(delta('bff_http_request_duration_seconds_bucket{route="/api/",le="+Inf"}')).toBe(5)
    expect(delta('bff_http_request_duration_seconds_sum{route="/api/"}')).toBeGreaterThan(0)
    // Only the calls that reached the upstream have an upstream time.
    expect(delta('bff_upstream_request_duration_seconds_count{route="/api/"}')).toBe(4)
    expect(delta('bff_upstream_request_duration_seconds_count{route="/admin-api/"}')).toBe(0)
    // The scrape before this one was counted too.
    expect(
      delta('bff_http_requests_total{route="/bff/metrics",method="GET",status="200"}')
    ).toBeGreaterThanOrEqual(1)

    for (const secret of secrets) expect(text).not.toContain(secret)
    // Node adds the process's metrics from prom-client; a Worker has no process to describe.
    if (TARGET === 'node') expect(text).toMatch(/^process_cpu_user_seconds_total \d/m)
    else expect(text).not.toContain('process_cpu')
  })

  it('keeps label sets bounded under 10 000 random paths and methods', async () => {
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'PROPFIND', 'BREW']
    const jar = stack.jar()
    const randoms: string[] = []
    let sent = 0
    const worker = async () => {
      while (sent < 10_000) {
        const i = sent++
        const random = randomBytes(8).toString('hex')
        randoms.push(random)
        const path = [`/${random}`, `/bff/${random}`, `/api/${random}`, `/bff/user/${random}`][
          i % 4
        ]!
        const method = methods[i % methods.length]!
        const response = await jar.request(method, `${path}?q=${random}`, { headers: CSRF })
        await response.body?.cancel()
      }
    }
    await Promise.all(Array.from({ length: 32 }, worker))

    const { text, series } = await metrics()
    const requests = [...series.keys()].filter((name) => name.startsWith('bff_http_requests_total'))
    const label = (name: string, key: string) => new RegExp(`${key}="([^"]*)"`).exec(name)?.[1]
    const routes = new Set(requests.map((name) => label(name, 'route')))
    const seenMethods = new Set(requests.map((name) => label(name, 'method')))
    const allowedRoute = /^(\/api\/|\/admin-api\/|\/bff\/[a-z]+|other)$/
    expect([...routes].filter((route) => !allowedRoute.test(route!))).toEqual([])
    expect(routes.has('other')).toBe(true)
    const known = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'OTHER']
    expect([...seenMethods].filter((method) => !known.includes(method!))).toEqual([])
    expect(seenMethods.has('OTHER')).toBe(true)
    // Every BFF series by the configuration's size, not the requests': a few hundred at most.
    const bffSeries = [...series.keys()].filter((name) => name.startsWith('bff_'))
    expect(requests.length).toBeLessThan(100)
    expect(bffSeries.length).toBeLessThan(600)
    expect(randoms.filter((random) => text.includes(random))).toEqual([])
  })

  it('answers 401 without the right bearer token (compared by constantTimeEqual)', async () => {
    for (const authorization of [
      '',
      `Bearer`,
      `Bearer ${METRICS_TOKEN.slice(0, -1)}`,
      `Bearer ${METRICS_TOKEN}x`,
      `Basic ${METRICS_TOKEN}`,
      `Bearer ${ADMIN_TOKEN}`,
    ]) {
      const response = await scrape(authorization)
      expect(response.status, authorization).toBe(401)
      expect(response.headers.get('cache-control')).toBe('no-store')
      expect(response.headers.get('www-authenticate')).toContain('Bearer')
      expect(await response.json()).toMatchObject({ error: 'unauthenticated' })
    }
    const ok = await scrape(`bearer ${METRICS_TOKEN}`)
    expect(ok.status).toBe(200)
    expect(ok.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    expect(ok.headers.get('cache-control')).toBe('no-store')
    await ok.text()
  })

  it('does not exist without BFF_METRICS_TOKEN', async () => {
    const plain = await startStack()
    try {
      const response = await fetch(`${plain.url}/bff/metrics`, {
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      })
      expect(response.status).toBe(404)
      expect(await response.json()).toMatchObject({ error: 'not_found' })
    } finally {
      await plain.close()
    }
  })
})

/** The session store's kind, the `store` label. */
function storeKind(): string {
  return SERVER_STORE
}

// A Redis that is not there: only Node has the redis store.
describe.skipIf(TARGET !== 'node')('metrics of a store that fails (node)', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      store: 'redis',
      env: { BFF_METRICS_TOKEN: METRICS_TOKEN, BFF_REDIS_URL: 'redis://127.0.0.1:9' },
    })
  })
  afterAll(() => stack?.close())

  it('counts each 503 store_unavailable and failed health check in bff_session_store_errors_total', async () => {
    const scrape = async () =>
      parse(
        await (
          await fetch(`${stack.url}/bff/metrics`, {
            headers: { authorization: `Bearer ${METRICS_TOKEN}` },
          })
        ).text()
      )
    const series = 'bff_session_store_errors_total{store="redis"}'
    expect((await scrape()).get(series)).toBe(0)
    expect((await fetch(`${stack.url}/bff/health`)).status).toBe(503)
    const callback = await stack.login(stack.jar())
    expect(callback.status).toBe(503)
    expect(await callback.json()).toMatchObject({ error: 'store_unavailable' })
    expect((await scrape()).get(series)).toBe(2)
  })
})

describe(`metrics of refreshes the IdP does not grant (${TARGET})`, () => {
  let stack: Stack
  let front: IdpFront
  beforeAll(async () => {
    front = await startIdpFront()
    stack = await startStack({
      store: SERVER_STORE,
      front,
      accessTokenTtl: 60,
      env: { BFF_METRICS_TOKEN: METRICS_TOKEN },
    })
  })
  afterAll(async () => {
    await stack?.close()
    await front?.close()
  })

  it('counts a failing token endpoint as error and a refused refresh token as expired', async () => {
    const scrape = async () =>
      parse(
        await (
          await fetch(`${stack.url}/bff/metrics`, {
            headers: { authorization: `Bearer ${METRICS_TOKEN}` },
          })
        ).text()
      )
    const series = (result: string) => `bff_token_refreshes_total{idp="default",result="${result}"}`
    const jar = stack.jar()
    await stack.login(jar)
    stack.advance(120)
    let answer = (res: ServerResponse) => res.writeHead(503).end()
    front.intercept = (req, res) => {
      if (!isRefreshGrant(req)) return false
      answer(res)
      return true
    }
    try {
      // The IdP is down: the call fails, the session goes on.
      expect((await jar.get('/api/x', { headers: CSRF })).status).toBeGreaterThanOrEqual(500)
      let after = await scrape()
      expect(after.get(series('error'))).toBe(1)
      expect(after.get(series('expired'))).toBe(0)
      // The IdP refuses the refresh token: the session ends.
      answer = (res) =>
        res
          .writeHead(400, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: 'invalid_grant' }))
      const refused = await jar.get('/api/x', { headers: CSRF })
      expect(refused.status).toBe(401)
      expect(await refused.json()).toMatchObject({ error: 'session_expired' })
      after = await scrape()
      expect(after.get(series('expired'))).toBe(1)
      expect(after.get(series('error'))).toBe(1)
      expect(after.get(series('success'))).toBe(0)
    } finally {
      front.intercept = undefined
    }
  })
})
