/**
 * Route table -> upstream request. Keeps every path inside its upstream prefix and the methods to
 * what an API needs, strips what must not cross the boundary (cookies, the CSRF header, hop-by-hop
 * headers, headers a browser could forge to steer an upstream; upstream Set-Cookie and headers
 * acting on the whole origin) and streams bodies in both directions.
 */
import type { Context } from 'hono'
import type { ApiRoute } from './config.ts'
import { BffError } from './errors.ts'

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

/**
 * Methods proxied by default: what an API called from a page uses. TRACE echoes the request
 * (cookies and tokens included) and CONNECT opens a tunnel; WebDAV methods (PROPFIND, MKCOL,
 * LOCK...) and others reach code paths an API was not built to guard. OPTIONS is left out: from a
 * browser it is a CORS preflight, which the BFF never approves for its same-origin SPA.
 * Methods are case-sensitive (RFC 9110 9.1): a lower-case "patch" is another method.
 */
export const DEFAULT_METHODS: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
])

/** The methods `route` proxies. A route will carry its own list once the config file has one. */
export function allowedMethods(_route: ApiRoute): ReadonlySet<string> {
  return DEFAULT_METHODS
}

export function matchRoute(routes: readonly ApiRoute[], pathname: string): ApiRoute | undefined {
  // Routes are sorted longest prefix first by parseConfig.
  return routes.find((route) => pathname.startsWith(route.prefix))
}

/**
 * `pathname` and `search` of a request URL as `new URL(url)` gives them, without parsing it again:
 * a request's URL (`Request.url`) is already serialized, so its path starts at the first `/` after
 * the scheme's `//` and ends at `?` or `#`.
 */
export function requestPath(url: string): { pathname: string; search: string } {
  const start = url.indexOf('/', url.indexOf('//') + 2)
  if (start === -1) return { pathname: '/', search: '' }
  const hash = url.indexOf('#', start)
  const end = hash === -1 ? url.length : hash
  const query = url.indexOf('?', start)
  if (query === -1 || query > end) return { pathname: url.slice(start, end), search: '' }
  return {
    pathname: url.slice(start, query),
    search: query + 1 === end ? '' : url.slice(query, end),
  }
}

// Without one of these, no path segment can be "." or "..", decode to a separator or a control
// character, or be malformed: most API paths have none and skip decoding segment by segment.
const SEGMENT_CHECK_NEEDED = /[%.\\\u0000-\u001f\u007f]/

/**
 * The upstream URL for a request under `route`, or a 400 when any path segment could climb out of
 * the prefix once some server on the way decodes it: `..` and `.` (also `..;` as Tomcat reads it),
 * encoded `/` or `\`, control characters, or malformed percent-encoding.
 */
export function upstreamUrl(route: ApiRoute, requestUrl: Pick<URL, 'pathname' | 'search'>): URL {
  const rest = requestUrl.pathname.slice(route.prefix.length)
  if (SEGMENT_CHECK_NEEDED.test(rest)) {
    for (const segment of rest.split('/')) {
      let decoded: string
      try {
        decoded = decodeURIComponent(segment)
      } catch {
        throw invalidPath()
      }
      const name = decoded.split(';')[0]
      if (name === '.' || name === '..' || /[/\\\u0000-\u001f\u007f]/.test(decoded)) {
        throw invalidPath()
      }
    }
  }
  const target = new URL(route.upstream.origin + route.upstream.pathname + rest + requestUrl.search)
  // Belt and braces: whatever the parser did, the result must still be under the upstream prefix.
  if (
    target.origin !== route.upstream.origin ||
    !target.pathname.startsWith(route.upstream.pathname)
  ) {
    throw invalidPath()
  }
  return target
}

/**
 * Where a redirect of the upstream sends the browser: a place inside the upstream's API goes
 * through the route's prefix on the BFF (never the upstream's own, often internal, address);
 * anywhere else is left as it is.
 */
export function publicLocation(location: string, route: ApiRoute, target: URL): string {
  let url: URL
  try {
    url = new URL(location, target)
  } catch {
    return location
  }
  const base = route.upstream
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) return location
  return route.prefix + url.pathname.slice(base.pathname.length) + url.search + url.hash
}

function invalidPath() {
  return new BffError(400, 'invalid_path', 'The request path is not allowed.')
}

export interface ForwardOptions {
  accessToken: string
  /** Public origin of the BFF, for X-Forwarded-Host/-Proto. */
  baseUrl: string
  clientIp?: string
  /** Milliseconds to wait for the upstream's response headers. */
  timeoutMs: number
  fetch: typeof fetch
}

/**
 * Sends the request of `c` to `target`, as `forward` does: the API proxy calls upstreams through
 * one of these. The default is `forward` over fetch; a runtime may bring a faster transport with
 * the same contract (Node: src/adapters/node/upstream.ts).
 */
export type Forwarder = (
  c: Context,
  target: URL,
  options: Omit<ForwardOptions, 'fetch'>
) => Promise<Response>

/**
 * Methods sent a second time when the connection fails before any answer, within the same timeout.
 * That failure is most often a kept-alive connection the upstream closed just as it was reused
 * (workerd's fetch and undici both send on it; no answer comes). Only safe methods without a body:
 * the first request may have been processed, and anything else could then happen twice.
 */
export const SAFE_TO_RESEND: ReadonlySet<string> = new Set(['GET', 'HEAD'])

/** Sends `request` to `target` with the bearer token and returns the upstream's answer, cleaned. */
export async function forward(request: Request, target: URL, options: ForwardOptions) {
  const headers = new Headers()
  // Headers the client named in Connection are hop-by-hop too (RFC 9110 7.6.1).
  const connectionListed = listed(request.headers.get('connection'))
  for (const [name, value] of request.headers) {
    if (!requestHeaderStripped(name) && !connectionListed.has(name)) headers.set(name, value)
  }
  headers.set('authorization', `Bearer ${options.accessToken}`)
  const base = new URL(options.baseUrl)
  headers.set('x-forwarded-host', base.host)
  headers.set('x-forwarded-proto', base.protocol.slice(0, -1))
  // The client's own X-Forwarded-For is not extended: it says whatever the client wants.
  if (options.clientIp) headers.set('x-forwarded-for', options.clientIp)

  // The timeout covers waiting for the upstream's headers only: not a long streamed answer, nor a
  // slow upload, so it starts again each time more of the request body goes out, and at its end.
  const controller = new AbortController()
  let answered = false
  let timer: ReturnType<typeof setTimeout> | undefined
  const wait = () => {
    if (answered) return
    clearTimeout(timer)
    timer = setTimeout(
      () => controller.abort(new DOMException('timeout', 'TimeoutError')),
      options.timeoutMs
    )
  }
  wait()
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD' && request.body !== null
  const upload = hasBody
    ? request.body!.pipeThrough(
        new TransformStream({
          transform(chunk, stream) {
            stream.enqueue(chunk)
            wait()
          },
          flush: wait,
        })
      )
    : undefined
  const send = () =>
    options.fetch(target, {
      method: request.method,
      headers,
      body: upload,
      // Redirects go back to the browser: following them here could carry the token to another host.
      redirect: 'manual',
      signal: controller.signal,
      ...(hasBody ? { duplex: 'half' } : {}),
    } as RequestInit)
  let upstream: Response
  try {
    try {
      upstream = await send()
    } catch (err) {
      if (controller.signal.aborted || !SAFE_TO_RESEND.has(request.method)) throw err
      upstream = await send()
    }
  } catch (err) {
    if (controller.signal.aborted) {
      throw new BffError(504, 'upstream_timeout', 'The API did not answer in time.', { cause: err })
    }
    throw new BffError(502, 'upstream_unavailable', 'The API could not be reached.', { cause: err })
  } finally {
    answered = true
    clearTimeout(timer)
  }
  // Start reading the upstream body now: fetch() cancels the body of a Response object that is
  // garbage-collected before anyone reads it, and `upstream` itself is dropped here while the
  // body waits for the session cookie to be written (seen as rare hung responses under load).
  const body = upstream.body ? upstream.body.pipeThrough(new TransformStream()) : null
  return new Response(body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: responseHeaders(upstream.headers),
  })
}

/** The header names a `Connection` value lists, in lower case. */
export function listed(connection: string | null | undefined): ReadonlySet<string> {
  if (!connection) return EMPTY
  return new Set(connection.split(',').map((name) => name.trim().toLowerCase()))
}
const EMPTY: ReadonlySet<string> = new Set()

function responseHeaders(upstream: Headers): Headers {
  const headers = new Headers()
  const connectionListed = listed(upstream.get('connection'))
  for (const [name, value] of upstream) {
    if (!responseHeaderStripped(name) && !connectionListed.has(name)) headers.append(name, value)
  }
  // fetch() has already decoded a body in a coding it knows; passing the encoding on would make
  // the browser decode it twice, and the length no longer matches. A coding fetch does not know
  // (zstd, which browsers ask for) arrives as it was sent: it goes on with its header, for the
  // browser to decode.
  headers.set('cache-control', privateUnlessShared(headers.get('cache-control')))
  const encoding = headers.get('content-encoding')
  if (encoding !== null && decodedByFetch(encoding)) {
    headers.delete('content-encoding')
    headers.delete('content-length')
  }
  return headers
}

/**
 * The upstream answered a request with a bearer token, whose answer shared caches never reuse
 * unless it says they may (RFC 9111 3.5: `public`, `s-maxage` or `must-revalidate`). The browser's
 * request carried a cookie instead, which does not hold a CDN in front of the BFF back: without
 * that permission the answer is marked `private`, or one user's data could be served to another.
 */
export function privateUnlessShared(cacheControl: string | null | undefined): string {
  if (!cacheControl?.trim()) return 'private'
  // Only directives, not words inside a quoted value (`no-cache="x, public"`); and only a plain
  // `private`: `private="Set-Cookie"` keeps that one field back and lets caches share the rest.
  const directives = cacheControl.replace(/"(?:[^"\\]|\\.)*"/g, '""')
  if (/(^|,)\s*(public|s-maxage|must-revalidate|private\b(?!\s*=)|no-store)\b/i.test(directives)) {
    return cacheControl
  }
  return `private, ${cacheControl}`
}

/** Codings fetch decodes (Fetch standard: gzip, deflate and br), alone or stacked. */
export function decodedByFetch(contentEncoding: string): boolean {
  return contentEncoding
    .toLowerCase()
    .split(',')
    .every((coding) => ['gzip', 'x-gzip', 'deflate', 'br'].includes(coding.trim()))
}
