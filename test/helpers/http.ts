/**
 * A cookie-keeping HTTP client for tests: global fetch with `redirect: 'manual'`, cookies kept per
 * origin, redirects followed one hop at a time so each step can be asserted.
 *
 * It is a jar, not a browser: cookies are host-only and per origin (scheme, host and port), so an
 * IdP and a BFF on two loopback ports never see each other's cookies; `Domain` and `SameSite` are
 * stored but not enforced; `Secure` cookies go only to https or loopback URLs (as in Chromium,
 * where localhost counts as a secure context).
 */

export interface RequestOptions {
  headers?: HeadersInit
  /** Sent as `application/x-www-form-urlencoded`. */
  form?: Record<string, string> | URLSearchParams
  /** Sent as `application/json`. */
  json?: unknown
  /** Any other body, sent as is. */
  body?: BodyInit
  /** Aborts the request (and its body), e.g. `AbortSignal.timeout(ms)`. */
  signal?: AbortSignal
}

export interface StoredCookie {
  name: string
  value: string
  path: string
  /** Epoch milliseconds; undefined for a session cookie. */
  expires?: number
  secure: boolean
  httpOnly: boolean
  sameSite?: string
}

export interface CookieJar {
  request(method: string, url: string | URL, options?: RequestOptions): Promise<Response>
  get(url: string | URL, options?: RequestOptions): Promise<Response>
  post(url: string | URL, options?: RequestOptions): Promise<Response>
  /**
   * Follows one redirect: 307/308 repeat the method and body, any other 3xx becomes a GET.
   * Throws if `response` is not a redirect. The redirect's body is discarded.
   */
  follow(response: Response): Promise<Response>
  /** Raw `Set-Cookie` lines of the last response this jar received. */
  readonly lastSetCookies: string[]
  /** Name -> value of the cookies this jar would send to `url`. */
  cookies(url: string | URL): Record<string, string>
  /** Every live cookie stored for the origin of `url`, with its attributes. */
  stored(url: string | URL): StoredCookie[]
  /** Stores a cookie as if `url` had answered with this `Set-Cookie` line. */
  setCookie(url: string | URL, line: string): void
  clear(): void
}

export interface CookieJarOptions {
  /** Resolves relative URLs, e.g. `http://127.0.0.1:3000`. */
  baseUrl?: string | URL
  /** Headers sent with every request (per-request headers win), e.g. `{ 'x-csrf': '1' }`. */
  headers?: HeadersInit
}

export function createCookieJar(options: CookieJarOptions = {}): CookieJar {
  const { baseUrl } = options
  const defaultHeaders = new Headers(options.headers)
  const origins = new Map<string, Map<string, StoredCookie>>()
  const sent = new WeakMap<Response, { method: string; options: RequestOptions }>()
  let lastSetCookies: string[] = []

  const resolve = (url: string | URL) => new URL(url, baseUrl)

  function live(url: URL): StoredCookie[] {
    const cookies = origins.get(url.origin)
    if (!cookies) return []
    const now = Date.now()
    for (const [key, cookie] of cookies) {
      if (cookie.expires !== undefined && cookie.expires <= now) cookies.delete(key)
    }
    return [...cookies.values()]
  }

  function matching(url: URL): StoredCookie[] {
    const secureContext = url.protocol === 'https:' || isLoopback(url.hostname)
    return live(url)
      .filter((cookie) => pathMatches(url.pathname, cookie.path))
      .filter((cookie) => !cookie.secure || secureContext)
      .sort((a, b) => b.path.length - a.path.length) // longer paths first, as browsers do
  }

  function store(url: URL, line: string): void {
    const cookie = parseSetCookie(line, url)
    if (!cookie) return
    let cookies = origins.get(url.origin)
    if (!cookies) origins.set(url.origin, (cookies = new Map()))
    const key = `${cookie.name};${cookie.path}`
    if (cookie.expires !== undefined && cookie.expires <= Date.now()) cookies.delete(key)
    else cookies.set(key, cookie)
  }

  async function request(
    method: string,
    target: string | URL,
    requestOptions: RequestOptions = {}
  ): Promise<Response> {
    const url = resolve(target)
    const headers = new Headers(defaultHeaders)
    new Headers(requestOptions.headers).forEach((value, name) => headers.set(name, value))
    const body = encodeBody(requestOptions, headers)
    const cookie = matching(url)
      .map(({ name, value }) => `${name}=${value}`)
      .join('; ')
    if (cookie) headers.set('cookie', cookie)

    // A streamed body needs duplex: 'half' (not yet in the DOM RequestInit type).
    const init: RequestInit & { duplex?: 'half' } = { method, headers, body, redirect: 'manual' }
    if (body instanceof ReadableStream) init.duplex = 'half'
    if (requestOptions.signal) init.signal = requestOptions.signal
    const response = await fetch(url, init)
    lastSetCookies = response.headers.getSetCookie()
    for (const line of lastSetCookies) store(url, line)
    sent.set(response, { method, options: requestOptions })
    return response
  }

  return {
    request,
    get: (url, requestOptions) => request('GET', url, requestOptions),
    post: (url, requestOptions) => request('POST', url, requestOptions),
    async follow(response) {
      const next = redirectLocation(response)
      if (!next) throw new Error(`expected a redirect, got ${response.status} from ${response.url}`)
      if (!response.bodyUsed) await response.body?.cancel() // frees the connection
      const previous = sent.get(response)
      if ((response.status === 307 || response.status === 308) && previous) {
        return request(previous.method, next, previous.options)
      }
      return request('GET', next)
    },
    get lastSetCookies() {
      return [...lastSetCookies]
    },
    cookies: (url) =>
      Object.fromEntries(matching(resolve(url)).map(({ name, value }) => [name, value])),
    stored: (url) => live(resolve(url)).map((cookie) => ({ ...cookie })),
    setCookie: (url, line) => store(resolve(url), line),
    clear: () => origins.clear(),
  }
}

/** The absolute URL a 3xx response points to, or undefined when it is not a redirect. */
export function redirectLocation(response: Response): URL | undefined {
  const location = response.headers.get('location')
  if (response.status < 300 || response.status > 399 || location === null) return undefined
  return new URL(location, response.url)
}

/** Parses one `Set-Cookie` line (RFC 6265 section 5.2); undefined when it has no name. */
export function parseSetCookie(line: string, url: URL): StoredCookie | undefined {
  const [pair = '', ...attributes] = line.split(';')
  const eq = pair.indexOf('=')
  if (eq < 1) return undefined
  const cookie: StoredCookie = {
    name: pair.slice(0, eq).trim(),
    value: pair.slice(eq + 1).trim(),
    path: defaultPath(url.pathname),
    secure: false,
    httpOnly: false,
  }
  let maxAge: number | undefined
  for (const attribute of attributes) {
    const at = attribute.indexOf('=')
    const key = (at === -1 ? attribute : attribute.slice(0, at)).trim().toLowerCase()
    const value = at === -1 ? '' : attribute.slice(at + 1).trim()
    if (key === 'path' && value.startsWith('/')) cookie.path = value
    else if (key === 'secure') cookie.secure = true
    else if (key === 'httponly') cookie.httpOnly = true
    else if (key === 'samesite') cookie.sameSite = value
    else if (key === 'max-age' && /^-?\d+$/.test(value)) maxAge = Number(value)
    else if (key === 'expires') {
      const time = Date.parse(value)
      if (!Number.isNaN(time)) cookie.expires = time
    }
  }
  // Max-Age wins over Expires; zero or less deletes the cookie.
  if (maxAge !== undefined) cookie.expires = maxAge <= 0 ? 0 : Date.now() + maxAge * 1000
  return cookie
}

function defaultPath(pathname: string): string {
  const slash = pathname.lastIndexOf('/')
  return slash <= 0 ? '/' : pathname.slice(0, slash)
}

function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true
  if (!requestPath.startsWith(cookiePath)) return false
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/'
}

function encodeBody(options: RequestOptions, headers: Headers): BodyInit | undefined {
  const given = [options.form, options.json, options.body].filter((body) => body !== undefined)
  if (given.length > 1) throw new TypeError('pass only one of "form", "json" and "body"')
  if (options.form !== undefined) {
    if (!headers.has('content-type')) {
      headers.set('content-type', 'application/x-www-form-urlencoded')
    }
    return new URLSearchParams(options.form).toString()
  }
  if (options.json !== undefined) {
    if (!headers.has('content-type')) headers.set('content-type', 'application/json')
    return JSON.stringify(options.json)
  }
  return options.body
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || hostname.startsWith('127.')
}
