/**
 * The config file (BFF_CONFIG) end to end: the IdP and the proxy route come from the file, not
 * from BFF_ISSUER/BFF_API (removed), on Node (a file) and in workerd (the JSON in the binding).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { CSRF, SERVER_STORE, startStack, type Stack } from './harness.ts'

describe('BFF_CONFIG', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      store: SERVER_STORE,
      // The secret stays in the environment: the file names it.
      env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          demo: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
            scopes: ['openid', 'profile', 'email', 'offline_access'],
          },
        },
        // Not /api/: only this file's route can reach the upstream.
        routes: [{ prefix: '/from-file', upstream: `${upstream}/base` }],
      }),
    })
  })
  afterAll(() => stack?.close())

  it('logs in at the IdP of the file and proxies through its route', async () => {
    const jar = stack.jar()
    const callback = await stack.login(jar)
    expect(callback.status).toBe(302)
    const user = await jar.get('/bff/user', { headers: CSRF })
    expect(user.status).toBe(200)
    expect((await user.json()).sub).toBe('alice')

    const proxied = await jar.get('/from-file/orders?x=1', { headers: CSRF })
    expect(proxied.status).toBe(200)
    const seen = stack.upstream.requests.at(-1)!
    expect(seen.url).toBe('/base/orders?x=1')
    expect(seen.headers.authorization).toMatch(/^Bearer /)

    // A silent refresh (on Workers in the session's object) uses the file's IdP too.
    stack.advance(120)
    const refreshed = await jar.get('/from-file/again', { headers: CSRF })
    expect(refreshed.status).toBe(200)
    const again = stack.upstream.requests.at(-1)!
    expect(again.url).toBe('/base/again')
    expect(again.headers.authorization).not.toBe(seen.headers.authorization)

    // BFF_API is gone: the harness's default route is not served.
    expect((await jar.get('/api/orders', { headers: CSRF })).status).toBe(404)
  })
})
