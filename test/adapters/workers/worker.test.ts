/**
 * What only the Workers entry does (src/adapters/workers/worker.ts): settings from bindings parsed
 * on the first request, a bad setting answered with 500 naming it (a Worker cannot refuse to
 * start), the store chosen by BFF_SESSION_STORE with durable-object as the default, and the test
 * clock refused as anything but a service binding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startIdp, type Idp } from '../../../src/demo/idp.ts'
import { freePort } from '../../helpers/upstream.ts'
import { startWorkerd, type Workerd } from './workerd.ts'

const VALID = {
  // The real test IdP's issuer, set below: /bff/health reports whether discovery works.
  BFF_ISSUER: '',
  BFF_CLIENT_ID: 'bff',
  BFF_CLIENT_SECRET: 'client-secret',
  BFF_BASE_URL: 'https://app.example.com',
  BFF_SESSION_SECRET: 's'.repeat(40),
}

let idp: Idp
beforeAll(async () => {
  idp = await startIdp()
  VALID.BFF_ISSUER = idp.issuer
})
afterAll(() => idp.stop())

async function withWorker(
  env: Record<string, string | number | boolean | object | undefined>,
  test: (worker: Workerd) => Promise<void>,
  options: { clock?: boolean; assets?: boolean } = {}
) {
  const worker = await startWorkerd({
    port: await freePort(),
    env,
    assets: options.assets,
    ...(options.clock ? { clockOffsetMs: () => 0 } : {}),
  })
  try {
    await test(worker)
  } finally {
    await worker.close()
  }
}

/** Waits for workerd's output to reach the log (it arrives after the response). */
async function logged(worker: Workerd, pattern: RegExp): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const text = worker.logs.join('\n')
    if (pattern.test(text)) return text
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return worker.logs.join('\n')
}

describe('settings', () => {
  it('answers 500 invalid_config naming every bad setting, and logs each problem', async () => {
    const env = { ...VALID, BFF_CLIENT_SECRET: undefined, BFF_SESSION_SECRET: 'short-secret' }
    await withWorker(env, async (worker) => {
      for (const path of ['/bff/user', '/bff/health', '/']) {
        const response = await fetch(`${worker.url}${path}`)
        expect(response.status).toBe(500)
        expect(response.headers.get('cache-control')).toBe('no-store')
        const body = await response.json()
        expect(body).toMatchObject({
          error: 'invalid_config',
          settings: ['BFF_CLIENT_SECRET', 'BFF_SESSION_SECRET'],
        })
        expect(JSON.stringify(body)).not.toContain('short-secret')
      }
      const log = await logged(worker, /BFF_SESSION_SECRET/)
      expect(log).toMatch(/"event":"config.invalid","problem":"BFF_CLIENT_SECRET is required/)
      expect(log).toMatch(/"problem":"BFF_SESSION_SECRET entry 1 is 12 characters/)
      expect(log).not.toContain('short-secret')
      // Once per isolate, not once per request.
      expect(log.match(/BFF_CLIENT_SECRET is required/g)).toHaveLength(1)
    })
  })

  it('takes BFF_CONFIG as a [vars] table, and names it and the JSON path when it is wrong', async () => {
    const idps = {
      corp: { issuer: idp.issuer, clientId: 'bff', clientSecret: '${CORP_SECRET}' },
    }
    const fromFile = {
      ...VALID,
      BFF_ISSUER: undefined,
      BFF_CLIENT_ID: undefined,
      BFF_CLIENT_SECRET: undefined,
      CORP_SECRET: 'client-secret',
    }
    await withWorker({ ...fromFile, BFF_CONFIG: { idps } }, async (worker) => {
      expect((await fetch(`${worker.url}/bff/health`)).status).toBe(200)
    })
    const wrong = { idps, routes: [{ prefix: '/api/', upstream: 'https://x.example/', tokn: 1 }] }
    await withWorker({ ...fromFile, BFF_CONFIG: wrong }, async (worker) => {
      const response = await fetch(`${worker.url}/bff/health`)
      expect(response.status).toBe(500)
      expect(await response.json()).toMatchObject({ settings: ['BFF_CONFIG'] })
      const log = await logged(worker, /routes\[0\]/)
      expect(log).toContain('"problem":"BFF_CONFIG routes[0].tokn: is not a known key"')
    })
  })

  it('refuses the redis store, which needs Node', async () => {
    await withWorker({ ...VALID, BFF_SESSION_STORE: 'redis' }, async (worker) => {
      const response = await fetch(`${worker.url}/bff/health`)
      expect(response.status).toBe(500)
      expect(await response.json()).toMatchObject({ settings: ['BFF_SESSION_STORE'] })
    })
  })

  it('refuses a plain-http BFF_BASE_URL that is not loopback', async () => {
    await withWorker({ ...VALID, BFF_BASE_URL: 'http://app.example.com' }, async (worker) => {
      const response = await fetch(`${worker.url}/bff/health`)
      expect(response.status).toBe(500)
      expect(await response.json()).toMatchObject({
        error: 'invalid_config',
        settings: ['BFF_BASE_URL'],
      })
    })
  })

  it('refuses BFF_TEST_CLOCK set as a variable or secret: only a service binding is a clock', async () => {
    // A quoted var is a string, an unquoted one a number binding: both are refused.
    for (const clock of ['86400000', 86400000]) {
      await withWorker({ ...VALID, BFF_TEST_CLOCK: clock }, async (worker) => {
        const response = await fetch(`${worker.url}/bff/health`)
        expect(response.status).toBe(500)
        expect(await response.json()).toMatchObject({ settings: ['BFF_TEST_CLOCK'] })
      })
    }
  })

  it('reads unquoted [vars] (number bindings) as settings, and checks them', async () => {
    // BFF_IDLE_TIMEOUT = 30 in wrangler.toml: a number binding, below the 60 s minimum.
    await withWorker({ ...VALID, BFF_IDLE_TIMEOUT: 30 }, async (worker) => {
      const response = await fetch(`${worker.url}/bff/health`)
      expect(response.status).toBe(500)
      expect(await response.json()).toMatchObject({ settings: ['BFF_IDLE_TIMEOUT'] })
    })
    await withWorker({ ...VALID, BFF_COOKIE_MAX_BYTES: 99_999 }, async (worker) => {
      expect(await (await fetch(`${worker.url}/bff/health`)).json()).toMatchObject({
        settings: ['BFF_COOKIE_MAX_BYTES'],
      })
    })
  })

  it('does not check the Redis settings, which do not apply on Workers', async () => {
    const env = { ...VALID, BFF_REDIS_URL: 'http://not-redis', BFF_REDIS_PREFIX: 'bad prefix!' }
    await withWorker(env, async (worker) => {
      expect((await fetch(`${worker.url}/bff/health`)).status).toBe(200)
    })
  })

  it('names every problem at once: settings, the test clock and the store together', async () => {
    const env = {
      ...VALID,
      BFF_CLIENT_SECRET: undefined,
      BFF_TEST_CLOCK: '1',
      BFF_SESSION_STORE: 'redis',
    }
    await withWorker(env, async (worker) => {
      const body = await (await fetch(`${worker.url}/bff/health`)).json()
      expect(body.settings).toEqual(
        expect.arrayContaining(['BFF_TEST_CLOCK', 'BFF_CLIENT_SECRET', 'BFF_SESSION_STORE'])
      )
      expect(body.settings).toHaveLength(3)
    })
  })
})

describe('stores', () => {
  it('uses the durable-object store by default, and no test clock without the binding', async () => {
    await withWorker({ ...VALID, BFF_SESSION_STORE: undefined }, async (worker) => {
      const response = await fetch(`${worker.url}/bff/health`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({
        status: 'ok',
        store: 'durable-object',
        idp: 'ok',
        idps: [{ name: 'default', status: 'ok' }],
      })
      expect(worker.logs.join('\n')).not.toContain('test_clock')
    })
  })

  it('runs the cookie store, and warns once when the test clock is on', async () => {
    await withWorker(
      { ...VALID, BFF_SESSION_STORE: 'cookie' },
      async (worker) => {
        const response = await fetch(`${worker.url}/bff/health`)
        expect(await response.json()).toEqual({
          status: 'ok',
          store: 'cookie',
          idp: 'ok',
          idps: [{ name: 'default', status: 'ok' }],
        })
        expect(await logged(worker, /test_clock/)).toMatch(/"event":"test_clock.enabled"/)
      },
      { clock: true }
    )
  })

  it('serves a 404 JSON for unknown BFF routes and passes everything else to the assets', async () => {
    await withWorker(VALID, async (worker) => {
      const bff = await fetch(`${worker.url}/bff/nope`)
      expect(bff.status).toBe(404)
      expect(await bff.json()).toMatchObject({ error: 'not_found' })
      // No ASSETS binding (as no static files on the Node test server): 404 not_found as JSON.
      const missing = await fetch(`${worker.url}/index.html`)
      expect(missing.status).toBe(404)
      expect(await missing.json()).toMatchObject({ error: 'not_found' })
    })
  })

  it('answers an address no asset serves with 404 not_found JSON or the page, after the assets', async () => {
    await withWorker(
      VALID,
      async (worker) => {
        const app = await fetch(`${worker.url}/app.js`)
        expect(app.status).toBe(200)
        expect(app.headers.get('content-security-policy')).toMatch(/^default-src 'self'/)

        const missing = await fetch(`${worker.url}/no-such-file.js`)
        expect(missing.status).toBe(404)
        expect(await missing.json()).toEqual({
          error: 'not_found',
          message: 'Nothing is at this address.',
        })

        const page = await fetch(`${worker.url}/no/such/page`, {
          headers: { accept: 'text/html' },
        })
        expect(page.status).toBe(404)
        expect(await page.text()).toContain('<title>Not found</title>')
        // The page's CSP allows its inline style by hash; the SPA's would block it.
        expect(page.headers.get('content-security-policy')).toMatch(
          /^default-src 'none'; style-src 'sha256-/
        )
      },
      { assets: true }
    )
  }, 60_000)
})
