/**
 * Per-route tokens across two Node instances behind one origin, sharing Redis: a resource's token
 * is granted once for a session's calls spread over both (the refresh lock in Redis), the BFF's
 * client-credentials token once for all callers, an exchanged token once for the session (each
 * a shared token in Redis under its own lock). The Node counterpart of
 * test/adapters/workers/route-tokens-isolates.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { startDpopUpstream } from '../helpers/dpop-upstream.ts'
import { introspectAsApi } from '../helpers/introspect.ts'
import { startCluster, type Cluster } from './cluster.ts'

const CSRF = { 'x-csrf': '1' }
const ORDERS = 'https://orders.example'
const CALLS = 40
vi.setConfig({ testTimeout: 30_000 })

let cluster: Cluster | undefined
afterEach(async () => {
  await cluster?.close()
  cluster = undefined
})

const routes = ({ issuer, upstream }: { issuer: string; upstream: string }) => ({
  idps: {
    demo: {
      issuer,
      clientId: DEMO_BFF_CLIENT.clientId,
      clientSecret: DEMO_BFF_CLIENT.clientSecret,
    },
  },
  routes: [
    { prefix: '/api/', upstream: `${upstream}/user/` },
    { prefix: '/orders/', upstream: `${upstream}/orders/`, resource: ORDERS },
    { prefix: '/ledger/', upstream: `${upstream}/ledger/`, token: 'exchange', resource: 'urn:l' },
    { prefix: '/reports/', upstream: `${upstream}/reports/`, token: 'client' },
  ],
})

/** `CALLS` calls at once through the balancer (round robin over the instances), all 200. */
async function burst(c: Cluster, jar: ReturnType<Cluster['jar']>, path: string) {
  const responses = await Promise.all(
    Array.from({ length: CALLS }, async (_, i) => {
      const response = await jar.get(`${path}${i}`, { headers: CSRF })
      await response.arrayBuffer()
      return response
    })
  )
  expect(responses.map((r) => r.status)).toEqual(Array(CALLS).fill(200))
  const seen = c.upstream.requests.filter((r) => r.url.startsWith(path))
  return new Set(seen.map((r) => r.headers.authorization))
}

describe.each([
  ['redis', { BFF_SESSION_STORE: 'redis' }],
  ['cookie', { BFF_SESSION_STORE: 'cookie', BFF_REDIS_URL: 'redis://127.0.0.1:6379' }],
] as const)('route tokens, two instances, %s store', (_store, env) => {
  it('one resource grant, one client grant, one exchange for calls over both instances', async () => {
    const c = (cluster = await startCluster({ env, configFile: routes }))
    const jar = c.jar()
    await c.login(jar)
    c.idp.resetCounters()
    expect((await burst(c, jar, '/orders/')).size).toBe(1)
    expect(c.idp.grants).toMatchObject({ resource: 1, refresh: 0 })

    expect((await burst(c, c.jar(), '/reports/')).size).toBe(1)
    expect(c.idp.grants.clientCredentials).toBe(1)

    expect((await burst(c, jar, '/ledger/')).size).toBe(1)
    expect(c.idp.grants.tokenExchange).toBe(1)

    // Expired: once more, one grant each, and the session lives on.
    c.advance(120)
    expect((await burst(c, jar, '/orders/later-')).size).toBe(1)
    expect(c.idp.grants).toMatchObject({ resource: 2, refresh: 1 })
    expect((await burst(c, c.jar(), '/reports/later-')).size).toBe(1)
    expect(c.idp.grants.clientCredentials).toBe(2)
  })
})

describe('a DPoP-bound client-route token, two instances sharing Redis', () => {
  it('is granted once, and each instance proves the key it is bound to (shared with it)', async () => {
    const dpop = await startDpopUpstream()
    try {
      const c = (cluster = await startCluster({
        env: { BFF_SESSION_STORE: 'redis' },
        idp: { dpopNonce: true },
        clientMetadata: { dpop_bound_access_tokens: true },
        configFile: ({ issuer }) => ({
          idps: {
            demo: {
              issuer,
              clientId: DEMO_BFF_CLIENT.clientId,
              clientSecret: DEMO_BFF_CLIENT.clientSecret,
              dpop: true,
            },
          },
          routes: [{ prefix: '/reports/', upstream: `${dpop.url}/`, token: 'client' }],
        }),
      }))
      dpop.introspect = (token) => introspectAsApi(c.idp, token)
      c.idp.resetCounters()
      // Round robin: every other call lands on the instance that did not get the token.
      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) => fetch(`${c.url}/reports/${i}`, { headers: CSRF }))
      )
      expect(responses.map((r) => r.status)).toEqual(Array(20).fill(200))
      expect(c.idp.grants.clientCredentials).toBe(1)
      expect(dpop.requests.map((r) => r.refused)).toEqual(Array(20).fill(undefined))
      expect(new Set(dpop.requests.map((r) => r.token)).size).toBe(1)
    } finally {
      await dpop.close()
    }
  })
})
