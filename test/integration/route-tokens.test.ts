/**
 * Per-route tokens end to end, in every store, on Node and in workerd, against the real IdP with
 * resource indicators, client credentials and token exchange; the upstream reads each token it
 * gets (aud, scope, sub, client_id) as a resource server would:
 * - a `user` route with `resource` gets that resource's token (RFC 8707), one grant for many
 *   parallel calls, refreshed on its own; the session's other routes keep the session's token;
 * - `exchange` gets the user's token exchanged for the resource (RFC 8693) with the route's scopes
 *   (which the session must have been granted), cached in the session, exchanged again when due
 *   and once the session's token is refreshed;
 * - `optional` with a resource gets the resource's token with a session, no token without;
 * - `client` gets the BFF's own token with no session, cached, one grant for many callers;
 * - a refused grant answers 502 `token_unavailable` and leaves the session as it was.
 * The grant counts asserted here are the ones the note reports.
 */
import * as client from 'openid-client'
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import type { RecordedRequest } from '../helpers/upstream.ts'
import { ALL_STORES, CSRF, describeStores, startStack, type Stack } from './harness.ts'

const ORDERS = 'https://orders.example'
const LEDGER = 'urn:ledger'
const REPORTS = 'https://reports.example'
const REFUSED = 'https://refused.example'
const PARALLEL = 10

describeStores(ALL_STORES, 'per-route tokens with the %s store', (store) => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      store,
      inspectTokens: true,
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      idp: {
        // The orders token lives longer than the session's (60 s): each is refreshed on its own.
        resourceServers: {
          [ORDERS]: { ttl: 600 },
          // Exchanged tokens live 20 s: due again long before the session's.
          [LEDGER]: { format: 'opaque', scope: 'ledger:read ledger:write', ttl: 20 },
        },
        refusedResources: [REFUSED],
        // Granted at login and named in its token response: the session's scope.
        extraScopes: ['ledger:read'],
      },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          demo: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
            scopes: 'openid profile email offline_access api:read ledger:read',
          },
        },
        routes: [
          { prefix: '/api/', upstream: `${upstream}/user/` },
          { prefix: '/orders/', upstream: `${upstream}/orders/`, resource: ORDERS },
          {
            prefix: '/ledger/',
            upstream: `${upstream}/ledger/`,
            token: 'exchange',
            resource: LEDGER,
            scopes: ['ledger:read'],
          },
          {
            prefix: '/ledger-write/',
            upstream: `${upstream}/ledger-write/`,
            token: 'exchange',
            resource: LEDGER,
            scopes: ['ledger:write'],
          },
          {
            prefix: '/maybe/',
            upstream: `${upstream}/maybe/`,
            token: 'optional',
            resource: ORDERS,
          },
          {
            prefix: '/reports/',
            upstream: `${upstream}/reports/`,
            token: 'client',
            scopes: ['api:read'],
            resource: REPORTS,
          },
          {
            prefix: '/no-ex/',
            upstream: `${upstream}/no-ex/`,
            token: 'exchange',
            resource: REFUSED,
          },
          { prefix: '/no-cc/', upstream: `${upstream}/no-cc/`, token: 'client', resource: REFUSED },
        ],
      }),
    })
  })
  afterAll(() => stack?.close())
  beforeEach(() => {
    stack.upstream.requests.length = 0
    stack.idp.resetCounters()
  })

  /** Sends `count` calls at once; all must answer 200. Returns what the upstream saw of them. */
  async function parallel(jar: ReturnType<Stack['jar']>, path: string, count = PARALLEL) {
    const responses = await Promise.all(
      Array.from({ length: count }, (_, i) => jar.get(`${path}${i}`, { headers: CSRF }))
    )
    expect(responses.map((r) => r.status)).toEqual(Array(count).fill(200))
    return seenUnder(path)
  }

  /** What reached the upstream through `prefix` (the upstream paths repeat the prefixes). */
  const seenUnder = (prefix: string): RecordedRequest[] =>
    stack.upstream.requests.filter((r) => r.url.startsWith(prefix))

  const tokenOf = (r: RecordedRequest) => r.headers.authorization!.slice('Bearer '.length)

  async function loggedIn() {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    stack.idp.resetCounters()
    return jar
  }

  it('a user route with `resource` gets its own token, one grant for parallel calls', async () => {
    const jar = await loggedIn()
    const seen = await parallel(jar, '/orders/')
    expect(stack.idp.grants).toMatchObject({ resource: 1, refresh: 0 })
    const tokens = new Set(seen.map(tokenOf))
    expect(tokens.size).toBe(1)
    expect(seen[0]!.token).toMatchObject({
      format: 'jwt',
      active: true,
      aud: ORDERS,
      sub: 'alice',
      client_id: DEMO_BFF_CLIENT.clientId,
      scope: 'api:read',
    })

    // The session's own route keeps the session's token, which is for no resource.
    const session = (await stack.sessionOf(jar))!
    expect(Object.keys(session.resourceTokens ?? {})).toEqual([ORDERS])
    expect((await jar.get('/api/me', { headers: CSRF })).status).toBe(200)
    const user = seenUnder('/user/').at(-1)!
    expect(tokenOf(user)).toBe(session.accessToken)
    expect(tokens.has(session.accessToken)).toBe(false)
    expect(user.token).toMatchObject({ active: true, sub: 'alice' })
    expect(user.token!.aud).not.toBe(ORDERS)

    // Cached: more calls, no grant.
    await parallel(jar, '/orders/again-')
    expect(stack.idp.grants).toMatchObject({ resource: 1, refresh: 0 })

    // The session's token (60 s) is due before the orders token (600 s): each on its own.
    stack.advance(120)
    const later = await parallel(jar, '/orders/later-')
    expect(stack.idp.grants).toMatchObject({ resource: 1, refresh: 1 })
    expect(new Set(later.map(tokenOf))).toEqual(tokens)
    stack.advance(600)
    const renewed = await parallel(jar, '/orders/renewed-')
    expect(stack.idp.grants).toMatchObject({ resource: 2, refresh: 2 })
    const next = new Set(renewed.map(tokenOf))
    expect(next.size).toBe(1)
    expect(next).not.toEqual(tokens)
    expect(renewed[0]!.token).toMatchObject({ active: true, aud: ORDERS, sub: 'alice' })
    // Every grant rotated the refresh token: the session still refreshes, nothing was spent twice.
    stack.advance(120)
    expect((await jar.get('/api/still', { headers: CSRF })).status).toBe(200)
    expect(stack.idp.grants).toMatchObject({ resource: 2, refresh: 3 })
  })

  it('`exchange`: the user token exchanged for its resource, again when due and after a refresh', async () => {
    const jar = await loggedIn()
    const seen = await parallel(jar, '/ledger/')
    expect(stack.idp.grants).toMatchObject({ tokenExchange: 1, refresh: 0 })
    const first = new Set(seen.map(tokenOf))
    expect(first.size).toBe(1)
    expect(seen[0]!.token).toMatchObject({
      format: 'opaque',
      active: true,
      aud: LEDGER,
      sub: 'alice',
      client_id: DEMO_BFF_CLIENT.clientId,
      scope: 'ledger:read',
    })
    const session = (await stack.sessionOf(jar))!
    expect(first.has(session.accessToken)).toBe(false)

    await parallel(jar, '/ledger/cached-')
    expect(stack.idp.grants).toMatchObject({ tokenExchange: 1 })

    // Due (20 s tokens, renewed 10 s before): exchanged again, the session's token still fresh.
    stack.advance(15)
    const due = await parallel(jar, '/ledger/due-')
    expect(stack.idp.grants).toMatchObject({ tokenExchange: 2, refresh: 0 })
    const renewed = new Set(due.map(tokenOf))
    expect(renewed.size).toBe(1)
    expect(renewed).not.toEqual(first)

    // The session's token is refreshed: the next call exchanges the new one.
    stack.advance(120)
    const after = await parallel(jar, '/ledger/after-')
    expect(stack.idp.grants).toMatchObject({ tokenExchange: 3, refresh: 1 })
    const second = new Set(after.map(tokenOf))
    expect(second.size).toBe(1)
    expect(second).not.toEqual(renewed)
    expect(after[0]!.token).toMatchObject({ active: true, aud: LEDGER, sub: 'alice' })

    // Scopes the session was not granted: refused before any exchange.
    const unscoped = await jar.get('/ledger-write/x', { headers: CSRF })
    expect(unscoped.status).toBe(403)
    expect(await unscoped.json()).toMatchObject({ error: 'insufficient_scope' })
    expect(stack.idp.grants.tokenExchange).toBe(3)

    // No session, no exchange.
    const anonymous = await stack.jar().get('/ledger/x', { headers: CSRF })
    expect(anonymous.status).toBe(401)
    expect((await anonymous.json()).error).toBe('unauthenticated')
  })

  it('`optional` with a resource: its token with a session, none without', async () => {
    const anonymous = await stack.jar().get('/maybe/x', { headers: CSRF })
    expect(anonymous.status).toBe(200)
    expect(seenUnder('/maybe/')[0]!.headers.authorization).toBeUndefined()
    const jar = await loggedIn()
    await parallel(jar, '/maybe/')
    expect(stack.idp.grants).toMatchObject({ resource: 1 })
    expect(seenUnder('/maybe/').at(-1)!.token).toMatchObject({ aud: ORDERS, sub: 'alice' })
  })

  it('`client` gets the BFF its own token without a session: cached, one grant', async () => {
    const anonymous = stack.jar()
    const seen = await parallel(anonymous, '/reports/')
    expect(stack.idp.grants).toMatchObject({ clientCredentials: 1, refresh: 0 })
    expect(new Set(seen.map(tokenOf)).size).toBe(1)
    expect(seen[0]!.token).toMatchObject({
      format: 'jwt',
      active: true,
      aud: REPORTS,
      sub: DEMO_BFF_CLIENT.clientId,
      client_id: DEMO_BFF_CLIENT.clientId,
      scope: 'api:read',
    })
    // A logged-in user gets the same client token: it is the BFF's, not the user's.
    const jar = await loggedIn()
    await parallel(jar, '/reports/user-')
    expect(stack.idp.grants.clientCredentials).toBe(0)
    expect(new Set(seenUnder('/reports/').map(tokenOf)).size).toBe(1)

    // Shortly before it expires (60 s, renewed 30 s before), one new grant.
    stack.advance(45)
    const renewed = await parallel(anonymous, '/reports/renewed-')
    expect(stack.idp.grants.clientCredentials).toBe(1)
    expect(new Set(renewed.map(tokenOf)).size).toBe(1)
    expect(tokenOf(renewed[0]!)).not.toBe(tokenOf(seen[0]!))
    expect(renewed[0]!.token).toMatchObject({ active: true, aud: REPORTS })
  })

  it('a refresh token refused for a resource grant ends the session, as for a refresh', async () => {
    const jar = await loggedIn()
    const session = (await stack.sessionOf(jar))!
    const idp = await client.discovery(
      new URL(stack.idp.issuer),
      DEMO_BFF_CLIENT.clientId,
      DEMO_BFF_CLIENT.clientSecret,
      undefined,
      { execute: [client.allowInsecureRequests] }
    )
    await client.tokenRevocation(idp, session.refreshToken!)
    const refused = await jar.get('/orders/x', { headers: CSRF })
    expect(refused.status).toBe(401)
    expect(await refused.json()).toMatchObject({ error: 'session_expired' })
    expect((await jar.get('/api/after', { headers: CSRF })).status).toBe(401)
    expect(seenUnder('/orders/')).toEqual([])
  })

  it('a refused grant answers 502 token_unavailable and leaves the session as it was', async () => {
    const jar = await loggedIn()
    for (const path of ['/no-ex/x', '/no-cc/x']) {
      const refused = await jar.get(path, { headers: CSRF })
      expect(refused.status).toBe(502)
      expect(await refused.json()).toMatchObject({ error: 'token_unavailable' })
    }
    expect(seenUnder('/no-')).toEqual([])
    expect((await jar.get('/api/fine', { headers: CSRF })).status).toBe(200)
    expect((await jar.get('/orders/fine', { headers: CSRF })).status).toBe(200)
  })
})
