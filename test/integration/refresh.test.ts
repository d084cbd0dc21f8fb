/**
 * Token refresh against the real IdP, with what outside testing found: short-lived access tokens
 * (the refresh skew adapts to the token's lifetime), refusals of a refresh token in any shape
 * (Glewlwyd's empty 400, an HTML 401...) ending the session while transient ones do not,
 * `client_secret_post`, and a `state` on RP-initiated logout. Grants are counted at the IdP.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { ServerResponse } from 'node:http'
import { bffClientMetadata } from '../../src/demo/idp.ts'
import { redirectLocation, type CookieJar } from '../helpers/http.ts'
import { isRefreshGrant, startIdpFront, type IdpFront } from '../helpers/idp-front.ts'
import { CSRF, SERVER_STORE, TARGET, describeStores, startStack, type Stack } from './harness.ts'

/** Measured grant counts are printed with BFF_TEST_REPORT=1 (for the record, not asserted). */
const report = (line: string) => {
  if (process.env.BFF_TEST_REPORT) console.info(`[grants ${TARGET}] ${line}`)
}

/** A second tab: another jar holding the same cookies as `jar` does now. */
function copyJar(stack: Stack, jar: CookieJar): CookieJar {
  const copy = stack.jar()
  for (const [name, value] of Object.entries(jar.cookies(stack.url))) {
    copy.setCookie(stack.url, `${name}=${value}; Path=/`)
  }
  return copy
}

const STORES = ['cookie', SERVER_STORE] as const

// 60 calls in sequence, or 50 at once, each checking Durable Objects in workerd: seconds on a
// busy machine. Time is what the clock tricks measure, never how fast this machine is.
vi.setConfig({ testTimeout: 120_000 })

for (const ttl of [4, 20, 60]) {
  // The default skew (30 s) is at least half of every lifetime here: it is capped at ttl / 2.
  describeStores(STORES, `${ttl} s access tokens with the %s store`, (store) => {
    let stack: Stack
    beforeAll(async () => {
      stack = await startStack({ store, accessTokenTtl: ttl })
    })
    afterAll(() => stack.close())

    it('50 concurrent calls right after login spend no grant while the token is fresh', async () => {
      const jar = stack.jar()
      await stack.login(jar)
      stack.idp.resetCounters()
      const started = Date.now()
      const responses = await Promise.all(
        Array.from({ length: 50 }, (_, i) => jar.get(`/api/burst/${i}`, { headers: CSRF }))
      )
      const elapsed = (Date.now() - started) / 1000
      expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200))
      const grants = stack.idp.grants.refresh
      report(
        `${store}, ttl ${ttl}: 50 concurrent calls after login: ${grants} grants (${elapsed} s)`
      )
      if (ttl >= 20) {
        // Whole seconds of expiry: a token lives at least ttl - 1 s, refreshed at ttl / 2 left.
        expect(grants).toBe(0)
      } else {
        // A 4 s token is due 1-2 s after login; a slow machine may get there during the burst.
        // Each grant then gives a token fresh for at least 1 s, and concurrent calls share one.
        expect(grants).toBeLessThanOrEqual(1 + Math.ceil(elapsed))
      }
    })

    it('a sequence of calls over time refreshes once per half lifetime, not on every call', async () => {
      const jar = stack.jar()
      await stack.login(jar)
      stack.idp.resetCounters()
      const started = Date.now()
      // 60 calls, half a second apart on the BFF's clock: 30 s of use.
      for (let i = 0; i < 60; i++) {
        stack.advance(0.5)
        expect((await jar.get(`/api/seq/${i}`, { headers: CSRF })).status).toBe(200)
      }
      const grants = stack.idp.grants.refresh
      const real = (Date.now() - started) / 1000
      report(`${store}, ttl ${ttl}: 60 calls over 30 s: ${grants} grants (${real} s real)`)
      // A token serves from ttl (ttl - 1 with whole-second expiry) down to ttl / 2 left: a grant
      // every ttl / 2 - 1 to ttl / 2 seconds of the BFF's clock, which real time moves on too.
      // With the skew uncapped (30 s), 4 s and 20 s tokens cost one grant per call: 60.
      expect(grants).toBeGreaterThanOrEqual(Math.floor(30 / (ttl / 2)) - 1)
      expect(grants).toBeLessThanOrEqual(1 + Math.floor((30 + real) / (ttl / 2 - 1)))
    })

    // With 4 s tokens the refreshed one is due again after 1 s: a slow machine could get there.
    it.skipIf(ttl < 20)(
      'a second tab holding the pre-refresh cookie spends no second grant',
      async () => {
        const jar = stack.jar()
        await stack.login(jar)
        const oldTab = copyJar(stack, jar)
        stack.advance(ttl / 2 + 1) // due: less than half the lifetime left
        stack.idp.resetCounters()
        expect((await jar.get('/api/first-tab', { headers: CSRF })).status).toBe(200)
        expect(stack.idp.grants.refresh).toBe(1)
        const refreshed = stack.upstream.requests.at(-1)!.headers.authorization
        expect((await oldTab.get('/api/second-tab', { headers: CSRF })).status).toBe(200)
        expect(stack.idp.grants.refresh).toBe(1)
        expect(stack.upstream.requests.at(-1)!.headers.authorization).toBe(refreshed)
      }
    )
  })
}

/** How the IdP's token endpoint refuses a refresh, as real IdPs do. */
const REFUSALS: Record<string, (res: ServerResponse) => void> = {
  '400 with an empty body (Glewlwyd)': (res) => res.writeHead(400).end(),
  '401 with an HTML page': (res) =>
    res.writeHead(401, { 'content-type': 'text/html' }).end('<h1>Unauthorized</h1>'),
  '401 with a WWW-Authenticate challenge': (res) =>
    res.writeHead(401, { 'www-authenticate': 'Basic realm="idp"' }).end(),
  '403 with JSON that is no OAuth error': (res) =>
    res.writeHead(403, { 'content-type': 'application/json' }).end('{"message":"forbidden"}'),
  '410 with plain text': (res) => res.writeHead(410, { 'content-type': 'text/plain' }).end('gone'),
}

/** Refusals that say "later", not "never": the session must survive them. */
const TRANSIENT: Record<string, (res: ServerResponse) => void> = {
  '429 with Retry-After': (res) => res.writeHead(429, { 'retry-after': '1' }).end(),
  '503 with an HTML page': (res) =>
    res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>Service Unavailable</h1>'),
  '408 with an empty body': (res) => res.writeHead(408).end(),
}

describeStores(STORES, 'a refresh the IdP refuses, with the %s store', (store) => {
  let stack: Stack
  let front: IdpFront
  beforeAll(async () => {
    front = await startIdpFront()
    stack = await startStack({ store, front })
  })
  afterAll(async () => {
    await stack.close()
    await front.close()
  })

  function refuseRefreshes(answer: ((res: ServerResponse) => void) | undefined) {
    front.intercept = answer
      ? (req, res) => {
          if (!isRefreshGrant(req)) return false
          answer(res)
          return true
        }
      : undefined
  }

  for (const [shape, answer] of Object.entries(REFUSALS)) {
    it(`${shape}: the API call answers 401 session_expired and the session ends`, async () => {
      const jar = stack.jar()
      await stack.login(jar)
      stack.advance(120) // the 60 s token has expired
      refuseRefreshes(answer)
      try {
        const api = await jar.get('/api/x', { headers: CSRF })
        expect(api.status).toBe(401)
        expect(await api.json()).toMatchObject({ error: 'session_expired' })
        // Ended, not merely refused once: the cookie is gone and so is the session.
        expect(jar.lastSetCookies.some((line) => /^bff=;.*Max-Age=0/.test(line))).toBe(true)
        expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
        // The log names the refusal by its status, not by how its body failed to parse.
        const status = shape.slice(0, 3)
        const expired = () => stack.logs().filter((l) => l.includes('"session.expired"'))
        await expect.poll(() => expired().at(-1) ?? '').toContain(`refused_http_${status}`)
      } finally {
        refuseRefreshes(undefined)
      }
    })

    it(`${shape}: /bff/user with a due token refreshes, and answers 401 on the refusal`, async () => {
      const jar = stack.jar()
      await stack.login(jar)
      const copy = copyJar(stack, jar)
      stack.advance(120)
      refuseRefreshes(answer)
      try {
        const user = await jar.get('/bff/user', { headers: CSRF })
        expect(user.status).toBe(401)
        expect(await user.json()).toMatchObject({ error: 'session_expired' })
      } finally {
        refuseRefreshes(undefined)
      }
      // The session is gone server-side too: another copy of the cookie has no session either
      // (the cookie store remembers the ended session in its revocation list).
      expect((await copy.get('/bff/user', { headers: CSRF })).status).toBe(401)
      expect((await copy.get('/api/y', { headers: CSRF })).status).toBe(401)
    })
  }

  for (const [shape, answer] of Object.entries(TRANSIENT)) {
    it(`${shape}: 503 idp_unavailable, the session kept, and refreshed once the IdP answers`, async () => {
      const jar = stack.jar()
      await stack.login(jar)
      stack.advance(120)
      refuseRefreshes(answer)
      try {
        const api = await jar.get('/api/x', { headers: CSRF })
        expect(api.status).toBe(503)
        expect(await api.json()).toMatchObject({ error: 'idp_unavailable' })
        // /bff/user still reports the session: it is valid, the IdP is only away for now.
        expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
      } finally {
        refuseRefreshes(undefined)
      }
      stack.idp.resetCounters()
      expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
      expect(stack.idp.grants.refresh).toBe(1)
    })
  }
})

describe('client_secret_post (BFF_CLIENT_AUTH)', () => {
  // Glewlwyd compares Basic credentials without form-decoding them, so such a secret fails there
  // with client_secret_basic; oidc-provider accepts only the method the client registered.
  const secret = 'post-only-secret+with-dash-and-plus/0123456789'
  let stack: Stack
  let front: IdpFront
  beforeAll(async () => {
    front = await startIdpFront()
    stack = await startStack({
      front,
      env: {
        BFF_CLIENT_ID: 'bff-post',
        BFF_CLIENT_SECRET: secret,
        BFF_CLIENT_AUTH: 'client_secret_post',
      },
    })
    await stack.idp.addClient({
      ...bffClientMetadata({
        redirectUris: [`${stack.baseUrl}/bff/callback`],
        clientId: 'bff-post',
        clientSecret: secret,
      }),
      token_endpoint_auth_method: 'client_secret_post',
    })
  })
  afterAll(async () => {
    await stack.close()
    await front.close()
  })

  it('logs in and refreshes with the secret in the form body', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
    stack.idp.resetCounters()
    stack.advance(120)
    expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
    expect(stack.idp.grants.refresh).toBe(1)
    const tokenCalls = front.seen.filter((req) => req.method === 'POST' && req.url === '/token')
    expect(tokenCalls.length).toBeGreaterThanOrEqual(2) // the code grant and the refresh
    for (const call of tokenCalls) {
      expect(call.headers.authorization).toBeUndefined()
      expect(new URLSearchParams(call.body).get('client_secret')).toBe(secret)
      expect(new URLSearchParams(call.body).get('client_id')).toBe('bff-post')
    }
  })
})

describe('RP-initiated logout', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.close())

  it('sends a random state with post_logout_redirect_uri (Glewlwyd ignores the URI without one)', async () => {
    const states: string[] = []
    for (const user of ['dora', 'emil']) {
      const jar = stack.jar()
      await stack.login(jar, { user })
      const { logoutUrl } = await (await jar.get('/bff/user', { headers: CSRF })).json()
      const endSession = redirectLocation(await jar.get(logoutUrl))!
      expect(endSession.origin).toBe(stack.idp.issuer)
      expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${stack.baseUrl}/`)
      states.push(endSession.searchParams.get('state') ?? '')
    }
    expect(states[0]).toMatch(/^[\w-]{20,}$/)
    expect(states[1]).toMatch(/^[\w-]{20,}$/)
    expect(states[0]).not.toBe(states[1])
  })
})
