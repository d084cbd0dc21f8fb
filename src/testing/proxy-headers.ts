/**
 * Headers for tests of what crosses the proxy: the same lists for every transport (the forwarder
 * contract in forwarder-contract.ts, test/core/proxy/forward.test.ts,
 * test/adapters/node/upstream.test.ts, test/integration/proxy-headers.test.ts).
 */
import { expect } from 'vitest'

/** Response headers an upstream must not get to the browser: each acts on the whole origin. */
export const ORIGIN_WIDE: Record<string, string> = {
  'www-authenticate': 'Basic realm="upstream"',
  'authentication-info': 'nextnonce="abc"',
  'strict-transport-security': 'max-age=0',
  'clear-site-data': '"cookies", "storage"',
  'access-control-allow-origin': 'https://evil.example',
  'access-control-allow-credentials': 'true',
  'access-control-expose-headers': '*',
  'alt-svc': 'h3=":443"; ma=86400',
  'public-key-pins': 'pin-sha256="AAAA"; max-age=86400',
  'public-key-pins-report-only': 'pin-sha256="AAAA"; max-age=86400',
  'expect-ct': 'max-age=86400, enforce',
  nel: '{"report_to":"evil","max_age":86400}',
  'report-to': '{"group":"evil","max_age":86400,"endpoints":[{"url":"https://evil.example/r"}]}',
  'reporting-endpoints': 'evil="https://evil.example/r"',
  'origin-agent-cluster': '?0',
  'service-worker-allowed': '/',
  'set-login': 'logged-out',
  'accept-ch': 'Sec-CH-UA-Model',
  'critical-ch': 'Sec-CH-UA-Model',
  'sec-session-registration': '(ES256);path="/reg";challenge="x"',
  'attribution-reporting-register-source': '{}',
  'shared-storage-write': 'clear',
  // For the CDN or proxy in front of the BFF: shared caching despite `private`, internal files.
  'cdn-cache-control': 'max-age=600',
  'cloudflare-cdn-cache-control': 'max-age=600',
  'surrogate-control': 'max-age=600',
  'edge-control': 'cache-maxage=600s',
  'x-accel-expires': '600',
  'x-accel-redirect': '/internal/secrets',
  'x-sendfile': '/etc/passwd',
}

/** Headers only about the answer itself: they reach the browser as the upstream sent them. */
export const ANSWER_ONLY: Record<string, string> = {
  'content-type': 'application/json',
  'x-request-id': 'req-42',
  etag: '"v1"',
  vary: 'Accept',
  'content-security-policy': "default-src 'none'",
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
  link: '</api/next>; rel="next"',
}

/** Request headers a browser could forge to steer the upstream or its proxies. */
export const FORGED: Record<string, string> = {
  'x-forwarded-for': '203.0.113.66',
  'x-forwarded-host': 'evil.example',
  'x-forwarded-proto': 'http',
  'x-forwarded-port': '8443',
  // The browser's own trace ids, which an upstream would record as its parent's.
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  'x-forwarded-prefix': '/admin',
  'x-forwarded-server': 'evil.example',
  'x-forwarded-user': 'admin',
  forwarded: 'for=203.0.113.66;host=evil.example',
  via: '1.1 evil',
  'x-real-ip': '203.0.113.66',
  'true-client-ip': '203.0.113.66',
  'cf-connecting-ip': '198.51.100.99',
  'cf-ipcountry': 'XX',
  'fastly-client-ip': '203.0.113.66',
  'x-client-ip': '203.0.113.66',
  'x-cluster-client-ip': '203.0.113.66',
  'x-proxyuser-ip': '203.0.113.66',
  'x-original-url': '/admin/delete-all',
  'x-original-uri': '/admin/delete-all',
  'x-original-host': 'evil.example',
  'x-original-method': 'DELETE',
  'x-rewrite-url': '/admin/delete-all',
  'x-http-method': 'DELETE',
  'x-http-method-override': 'DELETE',
  'x-method-override': 'DELETE',
  'x-client-cert': 'MIIBforged',
  'x-client-cert-chain': 'MIIBforged',
  'client-cert': ':MIIBforged:',
  'ssl-client-cert': 'MIIBforged',
  'ssl-client-verify': 'SUCCESS',
  'x-ssl-client-cert': 'MIIBforged',
  'x-arr-ssl': 'forged',
  'x-envoy-original-path': '/admin',
  'x-amzn-oidc-identity': 'admin',
  'x-middleware-subrequest': 'middleware',
  'x-remote-user': 'admin',
  proxy: 'http://evil.example:8080',
  // A proof of the page's own: only the BFF proves the key of the token it sends.
  dpop: 'eyJ0eXAiOiJkcG9wK2p3dCJ9.forged.sig',
}

/** Ordinary application headers: they reach the upstream as the browser sent them. */
export const ORDINARY: Record<string, string> = {
  accept: 'application/vnd.api+json',
  'content-type': 'application/json',
  'if-none-match': '"v1"',
  'accept-language': 'de-CH',
  'x-request-id': 'req-7',
  'x-custom-thing': 'kept',
  'x-client-version': '1.2.3',
}

/**
 * Names in FORGED the BFF sets itself, with its own values: a forwarder called without them sends
 * none. The upstream's `traceparent` is the BFF's child of it, never the browser's own.
 */
export const SET_BY_BFF = [
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'traceparent',
]

/** What reached the upstream: none of FORGED (but the BFF's own), every ORDINARY header as sent. */
export function expectForgedDroppedOrdinaryKept(headers: Record<string, unknown>): void {
  for (const name of Object.keys(FORGED).filter((name) => !SET_BY_BFF.includes(name))) {
    expect([name, headers[name]]).toEqual([name, undefined])
  }
  expect(headers.traceparent).not.toBe(FORGED.traceparent)
  for (const [name, value] of Object.entries(ORDINARY)) {
    expect([name, headers[name]]).toEqual([name, value])
  }
}
