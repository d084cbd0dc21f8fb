/**
 * Route table -> upstream request. Keeps every path inside its upstream prefix and the methods to
 * what an API needs, strips what must not cross the boundary (cookies, the CSRF header, hop-by-hop
 * headers, headers a browser could forge to steer an upstream; upstream Set-Cookie and headers
 * acting on the whole origin) and streams bodies in both directions.
 */
import { upstreamNonceChallenge } from './dpop-challenge.ts'
import {
  FETCH_DECODED_CODINGS,
  PASSABLE_CODINGS,
  browserAccepts,
  upstreamAcceptEncoding,
  varyOnAcceptEncoding,
} from './encoding.ts'
import type { Context } from 'hono'
import type { ApiRoute } from '../config/options.ts'
import { BffError } from '../errors.ts'
import type { StepUp } from '../policy/step-up.ts'
import { listed, requestHeaderStripped, responseHeaderStripped } from './headers.ts'
import { stepUpChallenge } from './step-up-challenge.ts'

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

/** The methods `route` proxies: its own `methods`, else `DEFAULT_METHODS`. */
export function allowedMethods(route: ApiRoute): ReadonlySet<string> {
  return route.methods ?? DEFAULT_METHODS
}

export function matchRoute(routes: readonly ApiRoute[], pathname: string): ApiRoute | undefined {
  // Routes are sorted longest prefix first when the options are resolved.
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
  /**
   * Sent as `Authorization: Bearer <accessToken>`. Without it the upstream gets no Authorization
   * at all: the browser's own is always dropped.
   */
  accessToken?: string
  /**
   * A DPoP proof (RFC 9449) for this one call: the token then goes as `Authorization: DPoP
   * <accessToken>`, the proof as the `DPoP` header.
   */
  dpop?: string
  /**
   * Called, when `dpop` was sent, with the upstream's `DPoP-Nonce` from any answer (RFC 9449 9:
   * the nonce for its next proofs); `challenge` is true when the answer is a `use_dpop_nonce`
   * challenge (a 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"`), read before
   * `WWW-Authenticate` is stripped.
   */
  onDpopNonce?: (nonce: string, challenge: boolean) => void
  /**
   * The request's body, read in full by the caller so that the request can be sent again (an
   * upstream's DPoP nonce challenge); sent in place of the request's own stream. Never for GET
   * or HEAD, which are sent without a body.
   */
  body?: Uint8Array
  /** Public origin of the BFF, for X-Forwarded-Host/-Proto. */
  baseUrl: string
  /**
   * The BFF's W3C trace context for this call (observe/spans.ts `upstreamTrace`), sent in place of
   * the browser's `traceparent` and `tracestate`, which are always dropped.
   */
  trace?: { traceparent: string; tracestate?: string }
  clientIp?: string
  /** Milliseconds to wait for the upstream's response headers. */
  timeoutMs: number
  fetch: typeof fetch
  /**
   * `fetch` hands a compressed body over as it came when asked to (workerd's
   * `encodeResponseBody: "manual"`, which Node's fetch does not know): an answer in a coding the
   * browser accepts then passes untouched. Without it, fetch decodes gzip, deflate and br, and the
   * browser gets the decoded body.
   */
  encoded?: boolean
  /**
   * Called when the upstream answers with an RFC 9470 step-up challenge, read (with
   * `stepUpChallenge`) before `WWW-Authenticate` is stripped like every other challenge.
   */
  onStepUp?: (stepUp: StepUp) => void
}

/**
 * Sends the request of `c` to `target`, as `forward` does: the API proxy calls upstreams through
 * one of these. The default is `forward` over fetch; a runtime may bring a faster transport with
 * the same contract (Node: src/adapters/node/upstream.ts).
 */
export type Forwarder = ((
  c: Context,
  target: URL,
  options: Omit<ForwardOptions, 'fetch'> & {
    /** The route the call is for: a transport that honours `tls` picks its connection by it. */
    route?: ApiRoute
  }
) => Promise<Response>) & {
  /**
   * Which form of a route's `tls` (mutual TLS to its upstream) this transport honours: `pem` (the
   * Node transport: `cert`, `key`, `ca`) or `binding` (Workers: an `mtls_certificates` binding).
   * Without it, a route with `tls` stops start-up (see proxy/upstream-tls.ts).
   */
  readonly tls?: 'pem' | 'binding'
  /**
   * Whether the request of `c`, which declares neither `Content-Length` nor `Transfer-Encoding`,
   * has a body, answered without reading any of it. Without it: whether its Request has a body
   * stream (proxy/replay-body.ts).
   */
  readonly hasBody?: (c: Context) => boolean
}

/**
 * Methods sent a second time when the connection fails before any answer, within the same timeout.
 * That failure is most often a kept-alive connection the upstream closed just as it was reused
 * (workerd's fetch and undici both send on it; no answer comes). Only safe methods without a body:
 * the first request may have been processed, and anything else could then happen twice.
 */
export const SAFE_TO_RESEND: ReadonlySet<string> = new Set(['GET', 'HEAD'])

/**
 * The headers an upstream gets for a request with `headers`: the client's, less those that never
 * cross (`requestHeaderStripped`, and those the client named in `Connection`), plus the route's
 * token, the BFF's own X-Forwarded-For/-Proto/-Host and trace context. The WebSocket upgrade
 * (websocket.ts) sends the same.
 */
export function upstreamHeaders(
  headers: Headers,
  options: Pick<ForwardOptions, 'accessToken' | 'dpop' | 'baseUrl' | 'clientIp' | 'trace'>
): Headers {
  const upstream = new Headers()
  // Headers the client named in Connection are hop-by-hop too (RFC 9110 7.6.1).
  const connectionListed = listed(headers.get('connection'))
  for (const [name, value] of headers) {
    if (!requestHeaderStripped(name) && !connectionListed.has(name)) upstream.set(name, value)
  }
  if (options.accessToken !== undefined) {
    upstream.set('authorization', `${options.dpop ? 'DPoP' : 'Bearer'} ${options.accessToken}`)
    if (options.dpop) upstream.set('dpop', options.dpop)
  }
  const base = new URL(options.baseUrl)
  upstream.set('x-forwarded-host', base.host)
  upstream.set('x-forwarded-proto', base.protocol.slice(0, -1))
  // The client's own X-Forwarded-For is not extended: it says whatever the client wants.
  if (options.clientIp) upstream.set('x-forwarded-for', options.clientIp)
  if (options.trace) {
    upstream.set('traceparent', options.trace.traceparent)
    if (options.trace.tracestate) upstream.set('tracestate', options.trace.tracestate)
  }
  return upstream
}

/**
 * Sends `request` to `target` with the bearer token, if any, and returns the upstream's answer,
 * cleaned.
 */
export async function forward(request: Request, target: URL, options: ForwardOptions) {
  const headers = upstreamHeaders(request.headers, options)
  // Only codings the browser accepts, and that this fetch can hand over (encoding.ts); `identity`
  // rather than none, or the runtime's fetch adds its own.
  const acceptEncoding = request.headers.get('accept-encoding')
  headers.set(
    'accept-encoding',
    upstreamAcceptEncoding(
      acceptEncoding,
      options.encoded ? PASSABLE_CODINGS : FETCH_DECODED_CODINGS
    )
  )

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
  const buffered = options.body
  const hasBody =
    request.method !== 'GET' &&
    request.method !== 'HEAD' &&
    (buffered !== undefined || request.body !== null)
  const streamed = hasBody && buffered === undefined
  const upload = streamed
    ? request.body!.pipeThrough(
        new TransformStream({
          transform(chunk, stream) {
            stream.enqueue(chunk)
            wait()
          },
          flush: wait,
        })
      )
    : hasBody
      ? buffered
      : undefined
  const send = () =>
    options.fetch(target, {
      method: request.method,
      headers,
      body: upload as BodyInit | undefined,
      // Redirects go back to the browser: following them here could carry the token to another host.
      redirect: 'manual',
      signal: controller.signal,
      ...(streamed ? { duplex: 'half' } : {}),
      ...(options.encoded ? { encodeResponseBody: 'manual' } : {}),
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
  const stepUp = stepUpChallenge(upstream.status, upstream.headers.get('www-authenticate'))
  if (stepUp) options.onStepUp?.(stepUp)
  const nonce = options.dpop ? upstream.headers.get('dpop-nonce') : null
  if (nonce) {
    const www = upstream.status === 401 ? upstream.headers.get('www-authenticate') : null
    options.onDpopNonce?.(nonce, upstreamNonceChallenge(www, nonce) !== undefined)
  }
  const answer = cleanedHeaders(upstream.headers)
  let body = upstream.body
  const encoding = answer.get('content-encoding')
  // Which coding the upstream chose, and whether it reaches the browser, depend on the browser's
  // Accept-Encoding.
  if (encoding !== null) answer.set('vary', varyOnAcceptEncoding(answer.get('vary')))
  if (encoding !== null && !options.encoded) {
    // fetch has already decoded a body in a coding it knows; passing the encoding on would make
    // the browser decode it twice, and the length no longer matches. A coding fetch does not know
    // (zstd) arrives as it was sent: it goes on with its header, for the browser to decode.
    if (decodedByFetch(encoding)) dropEncoding(answer)
  } else if (encoding !== null && !browserAccepts(acceptEncoding, encoding)) {
    // An upstream that compressed unasked, in a coding this browser does not read: decoded here
    // when the runtime can (gzip, deflate), else passed on with its header as it is.
    const formats = decoders(encoding)
    if (formats) {
      for (const format of formats) {
        body = body?.pipeThrough(new DecompressionStream(format)) ?? null
      }
      dropEncoding(answer)
    }
  }
  // A body passed as it came keeps its length (workerd sends the Content-Length of a fetched body
  // it pipes straight on). Otherwise, start reading the upstream body now: fetch() cancels the
  // body of a Response object that is garbage-collected before anyone reads it, and `upstream`
  // itself is dropped here while the body waits for the session cookie to be written (seen as
  // rare hung responses under load, with Node's fetch).
  if (body && !(options.encoded && body === upstream.body)) {
    body = body.pipeThrough(new TransformStream())
  }
  return new Response(body, {
    status: upstream.status,
    statusText: upstream.statusText,
    headers: answer,
    // workerd: the body is sent as it is, never compressed again for its Content-Encoding.
    ...(options.encoded ? { encodeBody: 'manual' } : {}),
  } as ResponseInit)
}

function dropEncoding(headers: Headers) {
  headers.delete('content-encoding')
  headers.delete('content-length')
}

/**
 * The DecompressionStream formats that undo `contentEncoding` (codings in the order applied), or
 * undefined when one of them is not one every runtime's DecompressionStream knows.
 */
function decoders(contentEncoding: string): CompressionFormat[] | undefined {
  const formats: CompressionFormat[] = []
  for (const part of contentEncoding.toLowerCase().split(',').reverse()) {
    const coding = part.trim()
    if (coding === 'gzip' || coding === 'x-gzip') formats.push('gzip')
    else if (coding === 'deflate') formats.push('deflate')
    else if (coding !== 'identity') return undefined
  }
  return typeof DecompressionStream === 'function' ? formats : undefined
}

/**
 * An upstream's response headers for the browser, for a body fetch has decoded (a refused
 * WebSocket upgrade): those that never cross stripped, `private` added, and the encoding and
 * length of a coding fetch decodes dropped.
 */
export function responseHeaders(upstream: Headers): Headers {
  const headers = cleanedHeaders(upstream)
  const encoding = headers.get('content-encoding')
  if (encoding !== null && decodedByFetch(encoding)) dropEncoding(headers)
  return headers
}

/** An upstream's response headers for the browser: those that never cross stripped, `private` added. */
function cleanedHeaders(upstream: Headers): Headers {
  const headers = new Headers()
  const connectionListed = listed(upstream.get('connection'))
  for (const [name, value] of upstream) {
    if (!responseHeaderStripped(name) && !connectionListed.has(name)) headers.append(name, value)
  }
  headers.set(
    'cache-control',
    privateUnlessShared(headers.get('cache-control'), headers.get('vary'))
  )
  return headers
}

/**
 * The upstream answered a request with a bearer token, whose answer shared caches never reuse
 * unless it says they may (RFC 9111 3.5: `public`, `s-maxage` or `must-revalidate`). The browser's
 * request carried a cookie instead, which does not hold a CDN in front of the BFF back: without
 * that permission the answer is marked `private`, or one user's data could be served to another.
 */
export function privateUnlessShared(
  cacheControl: string | null | undefined,
  vary?: string | null
): string {
  if (!cacheControl?.trim()) return 'private'
  // Only directives, not words inside a quoted value (`no-cache="x, public"`); and only a plain
  // `private`: `private="Set-Cookie"` keeps that one field back and lets caches share the rest.
  const directives = cacheControl.replace(/"(?:[^"\\]|\\.)*"/g, '""')
  if (/(^|,)\s*(private\b(?!\s*=)|no-store)\b/i.test(directives)) return cacheControl
  // An answer that varies on Authorization is the caller's own, whatever `public` says: a cache in
  // front of the BFF never sees the token (it sees a cookie), so every user would match one entry.
  const perCaller = vary ? /(^|,)\s*(authorization|\*)\s*(,|$)/i.test(vary) : false
  if (!perCaller && /(^|,)\s*(public|s-maxage|must-revalidate)\b/i.test(directives)) {
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
