/**
 * A route's `tls` on Workers: only an `mtls_certificates` binding can present a certificate, so PEM
 * texts, or a binding that is not bound, make the Worker answer 500 `invalid_config` naming
 * BFF_CONFIG, with the route in the log. (Calls through the binding:
 * test/integration/upstream-tls.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startIdp, type Idp } from '../../../src/demo/idp.ts'
import { freePort } from '../../helpers/upstream.ts'
import { startWorkerd } from './workerd.ts'

let idp: Idp
beforeAll(async () => {
  idp = await startIdp()
})
afterAll(() => idp.stop())

async function health(tls: object, serviceBindings = {}) {
  const worker = await startWorkerd({
    port: await freePort(),
    env: {
      BFF_BASE_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: 's'.repeat(40),
      BFF_CONFIG: {
        idps: { corp: { issuer: idp.issuer, clientId: 'bff', clientSecret: 'client-secret' } },
        routes: [{ prefix: '/mtls/', upstream: 'https://secure.example.com/', tls }],
      },
    },
    serviceBindings,
  })
  try {
    const response = await fetch(`${worker.url}/bff/health`)
    const body = await response.json()
    // workerd's output reaches the log shortly after the response.
    for (let i = 0; i < 50 && !worker.logs.some((l) => l.includes('/mtls/')); i++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    return { status: response.status, body, log: worker.logs.join('\n') }
  } finally {
    await worker.close()
  }
}

describe('tls on Workers', () => {
  it('refuses PEM texts: a Worker presents certificates only through a binding', async () => {
    const { status, body, log } = await health({ cert: 'PEM', key: 'PEM' })
    expect(status).toBe(500)
    expect(body).toMatchObject({ error: 'invalid_config', settings: ['BFF_CONFIG'] })
    expect(log).toContain('BFF_CONFIG route \\"/mtls/\\": \\"tls\\" needs \\"binding\\" on Workers')
  })

  it('refuses PEM texts next to a binding', async () => {
    const bound = { MY_CERT: { network: { allow: ['local'] } } }
    const { status, log } = await health({ binding: 'MY_CERT', ca: 'PEM' }, bound)
    expect(status).toBe(500)
    expect(log).toContain('\\"tls.ca\\" cannot be used on Workers')
  })

  it('refuses a binding that is not bound, naming it', async () => {
    const { status, body, log } = await health({ binding: 'MY_CERT' })
    expect(status).toBe(500)
    expect(body).toMatchObject({ settings: ['BFF_CONFIG'] })
    expect(log).toContain('\\"tls.binding\\" \\"MY_CERT\\" is not bound')
  })

  it('starts with the binding bound', async () => {
    const bound = { MY_CERT: { network: { allow: ['local'] } } }
    expect((await health({ binding: 'MY_CERT' }, bound)).status).toBe(200)
  })
})
