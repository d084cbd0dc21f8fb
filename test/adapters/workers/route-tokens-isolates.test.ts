/**
 * Per-route tokens across two isolates of the Worker sharing their Durable Objects, as two
 * Cloudflare machines would run it: a resource's token is granted once for calls arriving at both
 * (the session's object runs the grant), the client-credentials token and an exchanged token too
 * (an object holds each shared token and its renewal lock). The Workers counterpart of test/cluster/route-tokens.test.ts.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../../src/demo/idp.ts'
import type { CookieJar } from '../../helpers/http.ts'
import { CSRF, describeStores, startStack, type Stack } from '../../integration/harness.ts'

const ORDERS = 'https://orders.example'
const PER_ISOLATE = 20

function cookieHeader(stack: Stack, jar: CookieJar): string {
  return Object.entries(jar.cookies(stack.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

describeStores(['durable-object', 'cookie'], 'route tokens, two isolates, %s store', (store) => {
  let stack: Stack
  let urls: string[]
  beforeAll(async () => {
    stack = await startStack({
      store,
      isolates: 1,
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          demo: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
          },
        },
        routes: [
          { prefix: '/api/', upstream: `${upstream}/user/` },
          { prefix: '/orders/', upstream: `${upstream}/orders/`, resource: ORDERS },
          {
            prefix: '/ledger/',
            upstream: `${upstream}/ledger/`,
            token: 'exchange',
            resource: 'urn:l',
          },
          { prefix: '/reports/', upstream: `${upstream}/reports/`, token: 'client' },
        ],
      }),
    })
    urls = [stack.url, ...stack.isolateUrls]
  })
  afterAll(() => stack?.close())
  beforeEach(() => {
    stack.upstream.requests.length = 0
  })

  /** `PER_ISOLATE` calls to each isolate at once, all 200; the tokens the upstream got. */
  async function burst(path: string, cookie?: string): Promise<Set<string | undefined>> {
    const responses = await Promise.all(
      urls.flatMap((url) =>
        Array.from({ length: PER_ISOLATE }, (_, i) =>
          fetch(`${url}${path}${i}`, { headers: { ...CSRF, ...(cookie ? { cookie } : {}) } })
        )
      )
    )
    expect(responses.map((r) => r.status)).toEqual(Array(urls.length * PER_ISOLATE).fill(200))
    const seen = stack.upstream.requests.filter((r) => r.url.startsWith(path))
    return new Set(seen.map((r) => r.headers.authorization))
  }

  it("one resource grant for a session's calls arriving at both isolates", async () => {
    const jar = stack.jar()
    await stack.login(jar)
    stack.idp.resetCounters()
    const tokens = await burst('/orders/', cookieHeader(stack, jar))
    expect(stack.idp.grants).toMatchObject({ resource: 1, refresh: 0 })
    expect(tokens.size).toBe(1)
  })

  it('one client-credentials grant for calls arriving at both isolates', async () => {
    stack.idp.resetCounters()
    const tokens = await burst('/reports/')
    expect(stack.idp.grants.clientCredentials).toBe(1)
    expect(tokens.size).toBe(1)
  })

  it("one exchange for a session's calls arriving at both isolates", async () => {
    const jar = stack.jar()
    await stack.login(jar)
    stack.idp.resetCounters()
    await burst('/ledger/', cookieHeader(stack, jar))
    expect(stack.idp.grants.tokenExchange).toBe(1)
  })
})
