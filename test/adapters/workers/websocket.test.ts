/**
 * WebSocket routes on Workers: not relayed yet, so a route with `websocket: true` makes the Worker
 * answer 500 `invalid_config` naming BFF_CONFIG, the route in the log, rather than run a route
 * that would refuse or mishandle every upgrade.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startIdp, type Idp } from '../../../src/demo/idp.ts'
import { freePort } from '../../helpers/upstream.ts'
import { startWorkerd } from './workerd.ts'

let idp: Idp
beforeAll(async () => {
  idp = await startIdp()
})
afterAll(() => idp.stop())

it('refuses a websocket route at start-up, naming it', async () => {
  const worker = await startWorkerd({
    port: await freePort(),
    env: {
      BFF_BASE_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: 's'.repeat(40),
      BFF_CONFIG: {
        idps: { corp: { issuer: idp.issuer, clientId: 'bff', clientSecret: 'client-secret' } },
        routes: [{ prefix: '/live/', upstream: 'https://feed.example.com/', websocket: true }],
      },
    },
  })
  try {
    const response = await fetch(`${worker.url}/bff/health`)
    expect(response.status).toBe(500)
    expect(await response.json()).toMatchObject({
      error: 'invalid_config',
      settings: ['BFF_CONFIG'],
    })
    for (let i = 0; i < 50 && !worker.logs.some((l) => l.includes('/live/')); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(worker.logs.join('\n')).toContain('\\"websocket\\" is not supported on Workers yet')
  } finally {
    await worker.close()
  }
})
