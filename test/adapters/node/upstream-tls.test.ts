/**
 * A route's `tls` that Node cannot honour stops start-up, naming the route: a Workers binding, PEM
 * texts that cannot be read or a key of another certificate, or a transport that presents no
 * certificate at all. (Calls with the certificates: test/integration/upstream-tls.test.ts.)
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBff } from '../../../src/core/app.ts'
import { ConfigError, type BffOptions } from '../../../src/core/config/options.ts'
import { nodeForward } from '../../../src/adapters/node/upstream.ts'
import { startNode } from '../../../src/adapters/node/start.ts'
import { testCertificates } from '../../helpers/certs.ts'
import { startMtlsUpstream, type MtlsUpstream } from '../../helpers/mtls-upstream.ts'
import { freePort } from '../../helpers/upstream.ts'

const certs = testCertificates()

const options = (tls: NonNullable<BffOptions['routes']>[number]['tls']): BffOptions => ({
  issuer: 'https://idp.example.com',
  clientId: 'bff',
  clientSecret: 'client-secret',
  baseUrl: 'https://app.example.com',
  sessionSecret: 's'.repeat(40),
  routes: [
    { prefix: '/api/', upstream: 'https://api.example.com/' },
    { prefix: '/mtls/', upstream: 'https://secure.example.com/', tls },
  ],
})

function problemsOf(build: () => unknown): readonly string[] {
  try {
    build()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('accepted')
}

describe('tls at start-up on Node', () => {
  it('is refused with a transport that presents no certificate (fetch)', () => {
    const problems = problemsOf(() => createBff(options({ ...certs.client, ca: certs.ca })))
    expect(problems).toEqual([expect.stringMatching(/^route "\/mtls\/": "tls" needs a transport/)])
  })

  it('works with the Node transport, which takes the PEM texts', async () => {
    const forward = nodeForward({ routes: createBffRoutes({ ...certs.client, ca: certs.ca }) })
    expect(() => createBff(options({ ...certs.client }), { forward })).not.toThrow()
    await forward.close()
  })

  it('refuses a Workers binding on Node, naming the route', () => {
    const forward = nodeForward()
    const problems = problemsOf(() => createBff(options({ binding: 'MY_CERT' }), { forward }))
    expect(problems).toEqual([
      'route "/mtls/": "tls.binding" names a Workers mtls_certificates binding, which Node does not have: give "cert" and "key" (PEM) instead',
    ])
  })

  it('refuses PEM texts it cannot use, naming the route and never quoting them', () => {
    const cases = [
      { cert: 'not a certificate', key: certs.client.key },
      // The key of another certificate.
      { cert: certs.client.cert, key: certs.wrongClient.key },
      { cert: certs.client.cert, key: certs.client.key, ca: 'garbage' },
    ]
    for (const tls of cases) {
      const problems = problemsOf(() => nodeForward({ routes: createBffRoutes(tls) }))
      expect(problems).toHaveLength(1)
      expect(problems[0]).toMatch(/^route "\/mtls\/": "tls" cannot be used \(/)
      expect(problems[0]).not.toContain('PRIVATE KEY')
      expect(problems[0]).not.toContain('garbage')
    }
  })

  it('stops startNode, naming the route', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bff-tls-'))
    try {
      const file = path.join(dir, 'bff.json')
      await writeFile(
        file,
        JSON.stringify({
          routes: [
            { prefix: '/mtls/', upstream: 'https://secure.example.com/', tls: { binding: 'X' } },
          ],
        })
      )
      const env = {
        PORT: String(await freePort()),
        BFF_ISSUER: 'https://idp.example.com',
        BFF_CLIENT_ID: 'bff',
        BFF_CLIENT_SECRET: 'client-secret',
        BFF_SESSION_SECRET: 's'.repeat(40),
        BFF_CONFIG: file,
      }
      await expect(startNode(env, { serveStatic: false })).rejects.toThrow(
        /route "\/mtls\/": "tls.binding" names a Workers mtls_certificates binding/
      )
      // Bad PEM: refused while the transport is made, before anything else starts.
      await writeFile(
        file,
        JSON.stringify({
          routes: [
            {
              prefix: '/mtls/',
              upstream: 'https://secure.example.com/',
              tls: { cert: 'x', key: 'y' },
            },
          ],
        })
      )
      await expect(startNode(env, { serveStatic: false })).rejects.toThrow(
        /route "\/mtls\/": "tls" cannot be used/
      )
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('nodeForward with tls, without a Node server (the fetch path)', () => {
  let upstream: MtlsUpstream
  beforeAll(async () => {
    upstream = await startMtlsUpstream(certs, { strict: true })
  })
  afterAll(() => upstream.close())

  it("presents the route's certificate through undici's fetch, and none for other routes", async () => {
    const forward = nodeForward()
    const route = (tls?: object) => ({
      prefix: '/x/',
      upstream: new URL(`${upstream.url}/`),
      ...(tls ? { tls } : {}),
    })
    const mtls = route({ ...certs.client, ca: certs.ca })
    const plain = route()
    const app = new Hono()
    app.get('/:which', (c) =>
      forward(c, new URL(`${upstream.url}/thing`), {
        accessToken: 'token',
        baseUrl: 'https://app.example.com',
        timeoutMs: 5000,
        route: c.req.param('which') === 'mtls' ? mtls : plain,
      })
    )
    try {
      // app.request(): no IncomingMessage, so the call takes the fetch path.
      const ok = await app.request('/mtls')
      expect(ok.status).toBe(200)
      expect(await ok.json()).toEqual({ clientCn: 'bff-client', authorized: true })
      const refused = await app.request('/plain')
      expect(refused.status).toBe(502)
      expect(upstream.calls).toHaveLength(1)
    } finally {
      await forward.close()
    }
  })
})

/** The resolved routes of `options(tls)`, as `startNode` hands them to `nodeForward`. */
function createBffRoutes(tls: Parameters<typeof options>[0]) {
  return [
    {
      prefix: '/mtls/',
      upstream: new URL('https://secure.example.com/'),
      tls,
    },
  ]
}
