/**
 * An IdP whose discovery lists the grants it serves without the one a route needs. Node: start-up
 * stops, naming each route and grant. Workers (no start-up): the BFF says so once, at the first
 * request, and answers that route's calls 503 `grant_not_supported` without sending the grant;
 * other routes work as usual. (Node does the same when the IdP was away at start-up: the same core
 * code, core/oidc/grants.ts.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT, TOKEN_EXCHANGE } from '../../src/demo/idp.ts'
import { startIdpFront, type IdpFront } from '../helpers/idp-front.ts'
import { CSRF, SERVER_STORE, TARGET, describeStores, startStack, type Stack } from './harness.ts'

/** The BFF's log lines about grants, parsed. */
const grantLines = (stack: Stack) =>
  stack
    .logs()
    .filter((line) => line.includes('oidc.grant_unsupported'))
    .map((line) => JSON.parse(line.slice(line.indexOf('{'))) as Record<string, unknown>)

async function eventually<T>(read: () => T[], count: number): Promise<T[]> {
  for (let waited = 0; waited < 10_000; waited += 50) {
    if (read().length >= count) return read()
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return read()
}

describeStores([SERVER_STORE], 'grants the IdP does not serve (%s store)', (store) => {
  let stack: Stack
  let front: IdpFront
  const start = () =>
    startStack({
      store,
      front,
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      idp: { clientCredentials: false, tokenExchange: false },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          demo: { issuer, clientId: DEMO_BFF_CLIENT.clientId, clientSecret: '${TEST_IDP_SECRET}' },
        },
        routes: [
          { prefix: '/api/', upstream: `${upstream}/user/` },
          { prefix: '/reports/', upstream: `${upstream}/reports/`, token: 'client' },
          {
            prefix: '/ledger/',
            upstream: `${upstream}/ledger/`,
            token: 'exchange',
            resource: 'urn:l',
          },
        ],
      }),
    })
  beforeAll(async () => {
    front = await startIdpFront()
    if (TARGET === 'workerd') stack = await start()
  })
  afterAll(async () => {
    await stack?.close()
    await front?.close()
  })

  it.runIf(TARGET === 'node')('Node: start-up stops, naming each route and grant', async () => {
    const refused = await start().catch((err: unknown) => err)
    expect(refused).toBeInstanceOf(Error)
    const problems = (refused as { problems?: string[] }).problems
    expect(problems).toEqual([
      expect.stringMatching(
        /^route "\/reports\/" \(token "client"\) needs the client_credentials grant/
      ),
      expect.stringMatching(
        /^route "\/ledger\/" \(token "exchange"\) needs the .*token-exchange grant/
      ),
    ])
  })

  it.runIf(TARGET === 'workerd')(
    'reports each route and grant, and answers its calls 503 without asking',
    async () => {
      // Workers discover at first use: nothing is said before a request.
      expect(grantLines(stack)).toEqual([])
      expect((await fetch(`${stack.url}/bff/health`)).status).toBe(200)
      const lines = await eventually(() => grantLines(stack), 2)
      expect(lines).toEqual([
        expect.objectContaining({
          level: 'error',
          route: '/reports/',
          token: 'client',
          grant: 'client_credentials',
        }),
        expect.objectContaining({
          level: 'error',
          route: '/ledger/',
          token: 'exchange',
          grant: TOKEN_EXCHANGE,
        }),
      ])

      const jar = stack.jar()
      await stack.login(jar)
      for (const path of ['/reports/x', '/ledger/x']) {
        const refused = await jar.get(path, { headers: CSRF })
        expect(refused.status).toBe(503)
        expect(await refused.json()).toMatchObject({ error: 'grant_not_supported' })
      }
      expect(stack.upstream.requests.filter((r) => !r.url.startsWith('/user/'))).toEqual([])
      expect((await jar.get('/api/fine', { headers: CSRF })).status).toBe(200)
      const grants = front.seen
        .filter((r) => r.method === 'POST' && r.url.startsWith('/token'))
        .map((r) => new URLSearchParams(r.body).get('grant_type'))
      expect(grants).not.toContain('client_credentials')
      expect(grants).not.toContain(TOKEN_EXCHANGE)
      // Said once, not again per call.
      expect(grantLines(stack)).toHaveLength(2)
    }
  )
})
