/**
 * `tls` (mutual TLS to upstreams) end to end, with certificates made by openssl for the test: an
 * https upstream that demands a client certificate of the test CA in the handshake, and one that
 * only records what it was shown.
 *
 * On Node the routes give PEM texts (`cert`, `key`, `ca`, from `${NAME}` settings) and the undici
 * transport presents them. On workerd a route names a binding: Miniflare cannot emulate an
 * `mtls_certificates` binding locally (its mtls plugin only proxies to Cloudflare), so a workerd
 * `network` service whose TLS options carry the client key pair (and trust the test CA) stands in
 * for it. It is a Fetcher like the real binding, and workerd itself presents the certificate: what
 * is tested is that the route's calls go through its binding's fetch, and only its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testCertificates, type KeyPair } from '../helpers/certs.ts'
import { startMtlsUpstream, type MtlsUpstream } from '../helpers/mtls-upstream.ts'
import { CSRF, SERVER_STORE, TARGET, startStack, type Stack } from './harness.ts'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import type { CookieJar } from '../helpers/http.ts'

const certs = testCertificates()

/** A workerd network service presenting `pair` (or nothing) and trusting the test CA. */
const standIn = (pair?: KeyPair) => ({
  network: {
    allow: ['local'],
    tlsOptions: {
      ...(pair ? { keypair: { privateKey: pair.key, certificateChain: pair.cert } } : {}),
      trustedCertificates: [certs.ca],
    },
  },
})

/** A route's `tls` on this target: the client's own certificate, another CA's, or none. */
function tlsFor(which: 'right' | 'wrong' | 'none') {
  if (TARGET === 'workerd') {
    return { binding: { right: 'UPSTREAM_CERT', wrong: 'WRONG_CERT', none: 'NO_CERT' }[which] }
  }
  if (which === 'none') return { ca: '${TEST_CA}' }
  return which === 'right'
    ? { cert: '${TEST_CLIENT_CERT}', key: '${TEST_CLIENT_KEY}', ca: '${TEST_CA}' }
    : { cert: '${TEST_WRONG_CERT}', key: '${TEST_WRONG_KEY}', ca: '${TEST_CA}' }
}

describe('mutual TLS to upstreams (tls)', () => {
  let strict: MtlsUpstream
  let lenient: MtlsUpstream
  let stack: Stack
  let jar: CookieJar

  beforeAll(async () => {
    strict = await startMtlsUpstream(certs, { strict: true })
    lenient = await startMtlsUpstream(certs, { strict: false })
    stack = await startStack({
      store: SERVER_STORE,
      env: {
        TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret,
        TEST_CA: certs.ca,
        TEST_CLIENT_CERT: certs.client.cert,
        TEST_CLIENT_KEY: certs.client.key,
        TEST_WRONG_CERT: certs.wrongClient.cert,
        TEST_WRONG_KEY: certs.wrongClient.key,
      },
      serviceBindings: {
        UPSTREAM_CERT: standIn(certs.client),
        WRONG_CERT: standIn(certs.wrongClient),
        NO_CERT: standIn(),
      },
      configFile: ({ issuer, upstream }) => ({
        idps: {
          demo: {
            issuer,
            clientId: DEMO_BFF_CLIENT.clientId,
            clientSecret: '${TEST_IDP_SECRET}',
            scopes: ['openid', 'profile', 'email', 'offline_access'],
          },
        },
        routes: [
          { prefix: '/api/', upstream: `${upstream}/` },
          { prefix: '/mtls/', upstream: `${strict.url}/`, tls: tlsFor('right') },
          { prefix: '/mtls-wrong/', upstream: `${strict.url}/`, tls: tlsFor('wrong') },
          { prefix: '/mtls-none/', upstream: `${strict.url}/`, tls: tlsFor('none') },
          { prefix: '/plain/', upstream: `${strict.url}/` },
          { prefix: '/observe/', upstream: `${lenient.url}/`, tls: tlsFor('right') },
          { prefix: '/observe-none/', upstream: `${lenient.url}/`, tls: tlsFor('none') },
        ],
      }),
    })
    jar = stack.jar()
    await stack.login(jar)
  })
  afterAll(async () => {
    await stack?.close()
    await strict?.close()
    await lenient?.close()
  })

  it("presents the route's client certificate to an upstream that demands it", async () => {
    const session = (await stack.sessionOf(jar))!
    const response = await jar.get('/mtls/orders/1?x=2', { headers: CSRF })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ clientCn: 'bff-client', authorized: true })
    expect(strict.calls.at(-1)).toMatchObject({
      url: '/orders/1?x=2',
      clientCn: 'bff-client',
      authorized: true,
      authorization: `Bearer ${session.accessToken}`,
    })

    // An upload goes through the same connection kind, streamed.
    const posted = await jar.post('/mtls/orders', {
      headers: { ...CSRF, 'content-type': 'application/json' },
      body: JSON.stringify({ item: 'x'.repeat(100_000) }),
    })
    expect(posted.status).toBe(200)
    expect(strict.calls.at(-1)).toMatchObject({ url: '/orders', clientCn: 'bff-client' })
  })

  it("another CA's certificate, none, or a route without tls: 502, nothing reaches the API", async () => {
    // Warm: a connection with the right certificate is open to the same host and port.
    expect((await jar.get('/mtls/warm', { headers: CSRF })).status).toBe(200)
    const before = strict.calls.length
    for (const path of ['/mtls-wrong/orders', '/mtls-none/orders', '/plain/orders']) {
      const response = await jar.get(path, { headers: CSRF })
      expect(response.status, path).toBe(502)
      expect(await response.json(), path).toMatchObject({ error: 'upstream_unavailable' })
    }
    expect(strict.calls.length).toBe(before)
  })

  it("never lends a route's certificate to another route to the same upstream", async () => {
    // Alternating, so that pooled kept-alive connections of one route are there for the other.
    for (let i = 0; i < 3; i++) {
      const mine = await jar.get(`/observe/a${i}`, { headers: CSRF })
      expect(await mine.json()).toEqual({ clientCn: 'bff-client', authorized: true })
      const other = await jar.get(`/observe-none/b${i}`, { headers: CSRF })
      expect(other.status).toBe(200)
      expect(await other.json()).toEqual({ clientCn: null, authorized: false })
    }
    expect(lenient.calls.filter((call) => call.url.startsWith('/b'))).toHaveLength(3)
    expect(
      lenient.calls.filter((call) => call.url.startsWith('/b') && call.clientCn !== null)
    ).toEqual([])
  })
})
