/**
 * Resource tokens and the cookie budget: in `cookie` mode each resource's token grows the session
 * the cookie carries. Past the budget the session moves to the server store (Redis on Node with
 * BFF_REDIS_URL, the session's Durable Object on Workers) and the cookie keeps only its id; calls
 * go on with the tokens already had. With no server store at all (Node without Redis), a session
 * that cannot fit even trimmed is refused with 502 `session_too_large`, as any such session.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import type { CookieJar } from '../helpers/http.ts'
import { CSRF, TARGET, describeStores, startStack, type Stack } from './harness.ts'

const RESOURCES = [
  'https://a.example',
  'https://b.example',
  'https://c.example',
  'https://d.example',
]

const configFile = ({ issuer, upstream }: { issuer: string; upstream: string }) => ({
  idps: {
    demo: { issuer, clientId: DEMO_BFF_CLIENT.clientId, clientSecret: '${TEST_IDP_SECRET}' },
  },
  routes: RESOURCES.map((resource, i) => ({
    prefix: `/r${i}/`,
    upstream: `${upstream}/r${i}/`,
    resource,
  })),
})

/** Bytes of the session cookie (all its chunks) in the jar. */
function cookieBytes(stack: Stack, jar: CookieJar): number {
  return Object.entries(jar.cookies(stack.url))
    .filter(([name]) => name === 'bff' || name.startsWith('bff.'))
    .reduce((sum, [name, value]) => sum + name.length + value.length, 0)
}

describeStores(['cookie'], 'resource tokens in %s mode with a server store', (store) => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      store,
      env: {
        TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret,
        BFF_COOKIE_TOTAL_BYTES: '4096',
        ...(TARGET === 'node' ? { BFF_REDIS_URL: 'redis://127.0.0.1:6379' } : {}),
      },
      configFile,
    })
  })
  afterAll(() => stack?.close())

  it('moves a session grown past the budget to the server; the cookie keeps its id', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const before = cookieBytes(stack, jar)
    expect(before).toBeGreaterThan(1000) // the tokens travel in the cookie
    stack.idp.resetCounters()
    for (let i = 0; i < RESOURCES.length; i++) {
      expect((await jar.get(`/r${i}/x`, { headers: CSRF })).status).toBe(200)
    }
    expect(stack.idp.grants.resource).toBe(RESOURCES.length)
    expect(cookieBytes(stack, jar)).toBeLessThan(600) // an id, sealed
    const session = (await stack.sessionOf(jar))!
    expect(Object.keys(session.resourceTokens!).sort()).toEqual(RESOURCES)
    expect(stack.logs().some((line) => line.includes('cookie.session_server_side'))).toBe(true)

    // Every route keeps its own token, from the server-side session, without new grants.
    stack.upstream.requests.length = 0
    for (let i = 0; i < RESOURCES.length; i++) {
      expect((await jar.get(`/r${i}/again`, { headers: CSRF })).status).toBe(200)
    }
    expect(stack.idp.grants.resource).toBe(RESOURCES.length)
    const sent = stack.upstream.requests.map((r) => r.headers.authorization)
    expect(sent).toEqual(RESOURCES.map((r) => `Bearer ${session.resourceTokens![r]!.accessToken}`))
  })
})

describeStores(
  TARGET === 'node' ? ['cookie'] : [],
  'resource tokens in %s mode without a server store (Node)',
  (store) => {
    let stack: Stack
    beforeAll(async () => {
      stack = await startStack({
        store,
        env: {
          TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret,
          BFF_COOKIE_MAX_BYTES: '1024',
          BFF_COOKIE_TOTAL_BYTES: '2048',
        },
        configFile,
      })
    })
    afterAll(() => stack?.close())

    it('refuses a session that cannot fit with 502 session_too_large', async () => {
      const jar = stack.jar()
      await stack.login(jar)
      let status = 200
      for (let i = 0; i < RESOURCES.length && status === 200; i++) {
        const response = await jar.get(`/r${i}/x`, { headers: CSRF })
        status = response.status
        if (status !== 200) {
          expect(await response.json()).toMatchObject({ error: 'session_too_large' })
          expect(response.headers.get('cache-control')).toBe('no-store')
        }
      }
      expect(status).toBe(502)
    })
  }
)
