/**
 * Header hygiene at the proxy: which request headers never reach an upstream and which upstream
 * response headers never reach the browser. Both transports apply these rules: `forward`
 * (src/core/proxy/forward.ts) and `nodeForward` (src/adapters/node/upstream.ts).
 */

// RFC 9110 7.6.1 hop-by-hop headers: they concern one connection, never the next hop's.
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]

/**
 * Request headers that never reach the upstream (besides those named in `Connection`): what the
 * BFF owns and sets itself, and every header a browser could forge to steer an upstream, which
 * upstreams and the proxies in front of them trust as if an edge had set it. Names and prefixes
 * here; `requestHeaderStripped` is the one rule both transports apply.
 */
const REQUEST_STRIP = new Set([
  ...HOP_BY_HOP,
  // The BFF's own: the session, its CSRF header, the token it sets, the target's host.
  'host',
  'cookie',
  'x-csrf',
  'authorization',
  // A DPoP proof (RFC 9449) is the BFF's, signed for the token it sends: a browser's own never goes.
  'dpop',
  // W3C trace context: the BFF sends its own child of the request's (observe/spans.ts), so the
  // upstream's parent is the BFF's span and the browser cannot pick the ids an upstream records.
  'traceparent',
  'tracestate',
  // The transport frames the body itself (streamed, chunked).
  'content-length',
  // A request goes upstream with a body or without, never waiting for a 100 Continue: undici
  // refuses to send Expect at all, and a healthy API would be reported unreachable.
  'expect',
  // Proxy chains: the BFF sets X-Forwarded-For/-Proto/-Host itself and adds no Via. Max-Forwards
  // only steers TRACE and OPTIONS, which are never proxied.
  'forwarded',
  'via',
  'max-forwards',
  // httpoxy: CGI-style servers turn `Proxy:` into HTTP_PROXY, the upstream's own outbound proxy.
  'proxy',
  // Client IP, as CDNs, load balancers and frameworks read it.
  'x-real-ip',
  'true-client-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'client-ip',
  'x-originating-ip',
  'x-remote-ip',
  'x-remote-addr',
  'x-proxyuser-ip',
  'wl-proxy-client-ip',
  // URL, host and scheme rewrites (IIS, Symfony, Zend, nginx setups, Microsoft's Front-End-Https).
  'x-rewrite-url',
  'x-host',
  'x-http-host-override',
  'x-scheme',
  'x-url-scheme',
  'front-end-https',
  // Method overrides: a GET read as a DELETE.
  'x-method-override',
  // Client certificates, as TLS-terminating proxies pass them on (RFC 9440 Client-Cert too).
  'x-client-verify',
  'x-client-dn',
  'x-client-s-dn',
  'x-client-i-dn',
  // The user, as authenticating proxies (oauth2-proxy, Apache, Grafana's auth proxy) pass it on.
  'remote-user',
  'x-remote-user',
  'x-userinfo',
])
const REQUEST_STRIP_PREFIXES = [
  'proxy-', // Proxy-Authorization, Proxy-Client-IP and the like
  'x-forwarded', // every X-Forwarded-*, X-Forwarded itself: the BFF sets its own three
  'x-original-', // X-Original-URL/-URI/-Host/-Method/-Forwarded-For
  'x-http-method', // X-HTTP-Method, X-HTTP-Method-Override
  'x-client-cert', // X-Client-Cert, X-Client-Cert-Chain
  'client-cert', // RFC 9440 Client-Cert, Client-Cert-Chain
  'ssl-', // SSL-Client-Cert, SSL-Client-Verify (Apache mod_ssl exports)
  'x-ssl-',
  'x-arr-', // IIS Application Request Routing: X-ARR-SSL, X-ARR-ClientCert
  'cf-', // Cloudflare: CF-Connecting-IP, CF-IPCountry, CF-Access-JWT-Assertion
  'fastly-',
  'akamai-',
  'x-akamai-',
  'x-azure-', // Azure Front Door: X-Azure-ClientIP, X-Azure-FDID (the door an upstream trusts)
  'x-vercel-',
  'x-envoy-', // Envoy: X-Envoy-Original-Path, X-Envoy-Internal, routing overrides
  'x-amzn-', // AWS load balancers: X-Amzn-OIDC-Identity/-Data, X-Amzn-Mtls-Clientcert
  'x-appengine-', // App Engine: X-AppEngine-User-IP, -User-Email, -Cron
  'x-goog-iap-', // Google IAP's identity assertion
  'x-goog-authenticated-user-',
  'x-ms-client-principal', // Azure App Service authentication: the signed-in user
  'x-ms-token-',
  'x-auth-request-', // oauth2-proxy's user and email
  'x-authenticated-', // Kong's X-Authenticated-Userid, -Scope
  'x-consumer-', // Kong's consumer identity
  'x-webauth-',
  'x-middleware-', // Next.js X-Middleware-Subrequest skips its middleware (CVE-2025-29927)
]

/**
 * Upstream response headers that never reach the browser (besides those named in `Connection`):
 * the BFF owns its origin, and these act on the whole origin, or on state the browser keeps for
 * it, rather than on the one answer they come with. Kept, because they only concern that answer:
 * Cache-Control, Vary, Content-*, Location (rewritten), CSP, X-Frame-Options, Permissions-Policy,
 * Cross-Origin-Resource-Policy and Cross-Origin-Opener/Embedder-Policy (they apply to the document
 * or resource they come with; a proxied answer is never a page, as a navigation carries no X-CSRF),
 * Timing-Allow-Origin, Link, Refresh (only a page acts on it), Server-Timing.
 */
const RESPONSE_STRIP = new Set([
  ...HOP_BY_HOP,
  // Cookies of the upstream would live on the BFF's origin, beside the session's.
  'set-cookie',
  'set-cookie2',
  // A login dialog (Basic, Digest, NTLM) on the app's origin: the BFF is what authenticates here.
  'www-authenticate',
  'authentication-info',
  'proxy-authentication-info',
  // Transport security and pinning of the whole host: a max-age=0 switches HSTS off.
  'strict-transport-security',
  'public-key-pins',
  'public-key-pins-report-only',
  'expect-ct',
  // Wipes the origin's cookies (the session's included), storage and caches.
  'clear-site-data',
  // Sends later requests to the origin elsewhere (another host or port, HTTP/3).
  'alt-svc',
  // Reporting: network errors (NEL) of every later request to the origin go where they say.
  'nel',
  'report-to',
  'reporting-endpoints',
  // Process isolation is decided once per origin, by the first page that asks.
  'origin-agent-cluster',
  // Widens what a service worker may control, up to the whole origin.
  'service-worker-allowed',
  // State kept for the origin: FedCM login status, client hints, storage access, Shared Storage,
  // Topics.
  'set-login',
  'accept-ch',
  'critical-ch',
  'activate-storage-access',
  'shared-storage-write',
  'observe-browsing-topics',
  // Meant for the CDN or reverse proxy in front of the BFF, where they win over Cache-Control
  // (RFC 9213 targeted fields, vendors' own): one user's answer stored and served to everyone
  // despite the `private` added below, or (nginx, Apache) a file of the proxy's served instead.
  'cdn-cache-control',
  'cloudflare-cdn-cache-control',
  'surrogate-control',
  'edge-control',
  'x-sendfile',
])
const RESPONSE_STRIP_PREFIXES = [
  // CORS: the BFF serves its own origin's SPA and grants no other origin anything.
  'access-control-',
  // Attribution Reporting sources and triggers, registered for the origin.
  'attribution-reporting-',
  // Sec-* answers drive browser features: Sec-Session-Registration binds sessions to the origin.
  'sec-',
  // nginx in front: X-Accel-Redirect serves an internal location, X-Accel-Expires caches.
  'x-accel-',
]

// Prefixes are plain lower-case names: no character in them means anything to a RegExp.
const startsWithAny = (prefixes: readonly string[]) => new RegExp(`^(?:${prefixes.join('|')})`)
const REQUEST_STRIP_PREFIX = startsWithAny(REQUEST_STRIP_PREFIXES)
const RESPONSE_STRIP_PREFIX = startsWithAny(RESPONSE_STRIP_PREFIXES)

/** Whether a request header (its name in lower case) stays at the BFF. */
export function requestHeaderStripped(name: string): boolean {
  return REQUEST_STRIP.has(name) || REQUEST_STRIP_PREFIX.test(name)
}

/** Whether an upstream response header (its name in lower case) stays at the BFF. */
export function responseHeaderStripped(name: string): boolean {
  return RESPONSE_STRIP.has(name) || RESPONSE_STRIP_PREFIX.test(name)
}

/** The header names a `Connection` value lists, in lower case. */
export function listed(connection: string | null | undefined): ReadonlySet<string> {
  if (!connection) return EMPTY
  return new Set(connection.split(',').map((name) => name.trim().toLowerCase()))
}
const EMPTY: ReadonlySet<string> = new Set()
