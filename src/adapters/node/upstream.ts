/**
 * Upstream API calls on Node straight through an undici Agent, the HTTP client underneath Node's
 * own fetch, without fetch's layers. The contract is core/proxy/forward.ts's `forward`: the same headers
 * stripped and set (but none of the defaults Node's fetch adds), 502 `upstream_unavailable` when
 * the upstream cannot be reached, 504 `upstream_timeout` when its headers do not come in time,
 * redirects handed back, compressed answers passed untouched to a browser that accepts their
 * coding (decoded as fetch decodes them for one that does not), bodies streamed both ways. What
 * it saves per call: the Request, Headers and AbortSignal objects, the web streams in both
 * directions and the copies of the headers that fetch and `forward` make. Node-only, so it lives
 * outside src/core; requests that did not come from a Node HTTP/1 server (e.g.
 * `app.request()` in tests) go through `forward` over fetch instead.
 */
import type { Context } from 'hono'
import { IncomingMessage, ServerResponse } from 'node:http'
import { Readable, pipeline, type Transform } from 'node:stream'
import { Agent, fetch as undiciFetch, type Dispatcher } from 'undici'
import type { ApiRoute } from '../../core/config/options.ts'
import { BffError } from '../../core/errors.ts'
import {
  SAFE_TO_RESEND,
  decodedByFetch,
  forward,
  privateUnlessShared,
  type Forwarder,
} from '../../core/proxy/forward.ts'
import { listed, requestHeaderStripped, responseHeaderStripped } from '../../core/proxy/headers.ts'
import {
  browserAccepts,
  upstreamAcceptEncoding,
  varyOnAcceptEncoding,
} from '../../core/proxy/encoding.ts'
import { upstreamNonceChallenge } from '../../core/proxy/dpop-challenge.ts'
import { stepUpChallenge } from '../../core/proxy/step-up-challenge.ts'
import type { StepUp } from '../../core/policy/step-up.ts'
import { decodersFor } from './decode.ts'
import { RecordHeaders } from './headers.ts'
import { tlsAgents } from './upstream-tls.ts'

export interface NodeForwardOptions {
  /**
   * The undici dispatcher for upstream calls; its owner closes it. Default: an Agent of this
   * forwarder with undici's defaults, the same as Node's fetch uses.
   * @example { dispatcher: new Agent({ connections: 128 }) }
   */
  dispatcher?: Dispatcher
  /** fetch for requests that did not come from a Node server. Default: the global fetch. */
  fetch?: typeof fetch
  /**
   * The routes: each one with `tls` (mutual TLS) gets its Agent now, its PEM texts checked at once
   * (a mistake throws `ConfigError` naming the route). Others get theirs on first use.
   * @example { routes: config.api }
   */
  routes?: readonly ApiRoute[]
}

/** The Node transport; `close()` ends the connections of the routes' own (mutual TLS) Agents. */
export type NodeForwarder = Forwarder & { readonly tls: 'pem'; close(): Promise<void> }

// As fetch (RFC 9110): these answers have no body, whatever their headers say.
const NULL_BODY_STATUS = new Set([101, 204, 205, 304])

/**
 * A `Forwarder` over undici's dispatcher API. Reads the request straight from the server's
 * IncomingMessage and answers with a Response whose headers are a plain record, which
 * @hono/node-server writes as it is. A body that has fully arrived with the headers (most JSON
 * answers) is handed over as one buffer, so head and body leave in one write; a body that takes
 * longer is streamed as it comes, with backpressure.
 */
export function nodeForward(options: NodeForwardOptions = {}): NodeForwarder {
  const shared = options.dispatcher ?? new Agent()
  const fallbackFetch = options.fetch ?? ((input, init) => fetch(input, init))
  const tls = tlsAgents(options.routes)
  // X-Forwarded-Host/-Proto come from the BFF's own public origin, the same on every call.
  let forwardedFor: { baseUrl: string; host: string; proto: string } | undefined

  const forwarder: Forwarder = function nodeForward(c, target, call) {
    // A route with mutual TLS has an Agent of its own; every other route shares one.
    const own = tls.agentFor(call.route)
    const dispatcher = own ?? shared
    const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming
    // Only an untouched HTTP/1 request can be read here; anything else takes the fetch path.
    // A body the caller has read already (`call.body`) is sent from its buffer.
    if (
      !(incoming instanceof IncomingMessage) ||
      (incoming.readableDidRead && call.body === undefined)
    ) {
      const viaAgent: typeof fetch = (input, init) =>
        undiciFetch(input as string | URL, { ...(init as object), dispatcher: own }) as never
      return forward(c.req.raw, target, { ...call, fetch: own ? viaAgent : fallbackFetch })
    }
    if (forwardedFor?.baseUrl !== call.baseUrl) {
      const base = new URL(call.baseUrl)
      forwardedFor = { baseUrl: call.baseUrl, host: base.host, proto: base.protocol.slice(0, -1) }
    }
    const method = incoming.method ?? 'GET'
    const headers = requestHeaders(incoming.rawHeaders)
    // Only codings the browser accepts (core/proxy/encoding.ts): its answer passes untouched.
    const acceptEncoding = headers['accept-encoding']
    if (acceptEncoding !== undefined) {
      headers['accept-encoding'] = upstreamAcceptEncoding(acceptEncoding)
    }
    // The client's own Authorization is stripped: without a token, the upstream gets none.
    if (call.accessToken !== undefined) {
      headers.authorization = `${call.dpop ? 'DPoP' : 'Bearer'} ${call.accessToken}`
      if (call.dpop) headers.dpop = call.dpop
    }
    headers['x-forwarded-host'] = forwardedFor.host
    headers['x-forwarded-proto'] = forwardedFor.proto
    // The client's own X-Forwarded-For is not extended: it says whatever the client wants.
    if (call.clientIp) headers['x-forwarded-for'] = call.clientIp
    if (call.trace) {
      headers.traceparent = call.trace.traceparent
      if (call.trace.tracestate) headers.tracestate = call.trace.tracestate
    }
    // Nothing the client did not send: none of the Accept, Accept-Language, Accept-Encoding,
    // User-Agent or Sec-Fetch-Mode that Node's fetch would add (README: what passes the proxy).

    return new Promise<Response>((resolve, reject) => {
      const send = () =>
        dispatcher.dispatch(
          {
            origin: target.origin,
            path: target.pathname + target.search,
            method: method as Dispatcher.HttpMethod,
            headers,
            // Streamed as it comes (chunked, Content-Length having been dropped), as fetch does.
            body: method === 'GET' || method === 'HEAD' ? null : (call.body ?? incoming),
          },
          call_
        )
      // See SAFE_TO_RESEND in core/proxy/forward.ts: the same rule as the fetch path.
      const resend = SAFE_TO_RESEND.has(method) ? send : undefined
      const call_ = new UpstreamCall(method, call.timeoutMs, resolve, reject, resend, call.onStepUp)
      call_.acceptEncoding = acceptEncoding
      if (call.dpop) call_.onDpopNonce = call.onDpopNonce
      // node-server cancels an answer's body only once it has begun to write it: a browser that
      // left before then (while the API was still thinking) left the upstream's answer paused
      // mid-way for good, its connection and buffers held. The call ends when the browser goes.
      const outgoing = (c.env as { outgoing?: unknown }).outgoing
      if (outgoing instanceof ServerResponse) {
        if (outgoing.destroyed) call_.clientGone()
        else outgoing.once('close', () => outgoing.writableFinished || call_.clientGone())
      }
      try {
        send()
      } catch (err) {
        // A header undici refuses to send (Expect, say): fetch fails such a call too.
        call_.onError(err as Error)
      }
    })
  }
  /** HTTP/1.1 framing, as Node's parser read it: a body only with either header (RFC 9112 6.3). */
  const hasBody = (c: Context): boolean => {
    const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming
    if (!(incoming instanceof IncomingMessage)) return c.req.raw.body !== null
    const { headers } = incoming
    return headers['transfer-encoding'] !== undefined || Number(headers['content-length'] ?? 0) > 0
  }
  return Object.assign(forwarder, { tls: 'pem' as const, close: () => tls.close(), hasBody })
}

/** The client's headers as fetch would send them: names lower-cased, repeats joined with ", ". */
function requestHeaders(raw: string[]): Record<string, string> {
  // No prototype: a header called "constructor" or "__proto__" is just a header.
  const headers: Record<string, string> = Object.create(null)
  let connection: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (name === 'connection') connection = connection ? `${connection}, ${value}` : value
    if (requestHeaderStripped(name)) continue
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  // Headers the client named in Connection are hop-by-hop too (RFC 9110 7.6.1).
  if (connection) for (const name of listed(connection)) delete headers[name]
  return headers
}

/** The upstream's headers for the browser, cleaned as core/proxy/forward.ts's `responseHeaders` does. */
function responseHeaders(raw: Buffer[]): Record<string, string> {
  const headers: Record<string, string> = Object.create(null)
  let connection: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase()
    const value = raw[i + 1]!.toString('latin1')
    if (name === 'connection') connection = connection ? `${connection}, ${value}` : value
    if (responseHeaderStripped(name)) continue
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  if (connection) for (const name of listed(connection)) delete headers[name]
  headers['cache-control'] = privateUnlessShared(headers['cache-control'], headers.vary)
  return headers
}

/** Every line of one header in a raw list (names in any case), joined with ", " as fetch joins them. */
function rawHeader(raw: Buffer[], name: string): string | undefined {
  let value: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toString('latin1').toLowerCase() !== name) continue
    const line = raw[i + 1]!.toString('latin1')
    value = value === undefined ? line : `${value}, ${line}`
  }
  return value
}

/**
 * One upstream call, as undici's dispatch handler: settles the promise with the Response (or a
 * 502/504), then feeds the body: into a buffer while it arrives together with the headers, into
 * a web stream once it takes longer.
 */
class UpstreamCall implements Dispatcher.DispatchHandler {
  #settled = false
  #timedOut = false
  #abort: ((reason: Error) => void) | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  /** Some of a request body has gone out. */
  #uploaded = false
  #resume: (() => void) | undefined
  /** Chunks that came while the body was being collected; undefined once streaming. */
  #early: Buffer[] | undefined
  #stream: ReadableStreamDefaultController<Uint8Array> | undefined
  #init: ResponseInit | undefined
  #decoders: Transform[] = []
  #done = false
  /** The reader went away (the browser disconnected): the stream takes nothing more. */
  #cancelled = false
  /** Set when the call sent a DPoP proof: told the upstream's `DPoP-Nonce` (see ForwardOptions). */
  onDpopNonce?: (nonce: string, challenge: boolean) => void
  /** The browser's Accept-Encoding: a compressed answer in codings it accepts passes untouched. */
  acceptEncoding?: string

  constructor(
    private readonly method: string,
    private readonly timeoutMs: number,
    private readonly resolve: (response: Response) => void,
    private readonly reject: (error: BffError) => void,
    /** Sends the request once more, for a connection lost before any answer; used up once called. */
    private resend?: () => void,
    private readonly onStepUp?: (stepUp: StepUp) => void
  ) {
    this.#wait()
  }

  /**
   * (Re)starts the wait for the upstream's headers. The timeout covers that wait only: not a long
   * streamed answer, nor a slow upload, so it starts again each time more of the request body
   * has gone out and once all of it has.
   */
  #wait() {
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#timedOut = true
      const reason = new Error(`no response headers within ${this.timeoutMs} ms`)
      this.#abort?.(reason)
      this.#fail(reason)
    }, this.timeoutMs)
  }

  onBodySent() {
    this.#uploaded = true
    if (!this.#init && !this.#settled) this.#wait()
  }

  onRequestSent() {
    if (this.#uploaded && !this.#init && !this.#settled) this.#wait()
  }

  #fail(cause: Error) {
    if (this.#settled) return
    this.#settled = true
    clearTimeout(this.#timer)
    this.reject(
      this.#timedOut
        ? new BffError(504, 'upstream_timeout', 'The API did not answer in time.', { cause })
        : new BffError(502, 'upstream_unavailable', 'The API could not be reached.', { cause })
    )
  }

  onConnect(abort: (reason?: Error) => void) {
    this.#abort = abort
    // Timed out while connecting: the caller has its 504 already; drop the call.
    if (this.#timedOut) abort(new Error('timed out'))
    else if (this.#cancelled) abort(new Error('the client went away'))
  }

  /** The browser went away before its answer was written out: the upstream call ends. */
  clientGone() {
    if (this.#cancelled || this.#done) return
    this.#cancelled = true
    this.resend = undefined
    this.#abort?.(new Error('the client went away'))
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void, statusText: string) {
    if (status < 200) return true // 1xx: informational, the answer is still to come
    if (this.#settled) return false
    clearTimeout(this.#timer)
    this.#resume = resume
    // Read before responseHeaders strips WWW-Authenticate; only a 401 can be a step-up challenge.
    const www = status === 401 ? rawHeader(rawHeaders, 'www-authenticate') : undefined
    if (status === 401) {
      const stepUp = stepUpChallenge(status, www)
      if (stepUp) this.onStepUp?.(stepUp)
    }
    const nonce = this.onDpopNonce && rawHeader(rawHeaders, 'dpop-nonce')
    if (nonce) this.onDpopNonce!(nonce, upstreamNonceChallenge(www, nonce) !== undefined)
    const headers = responseHeaders(rawHeaders)
    // A body in codings the browser accepts goes on as it came, with its encoding and length. One
    // in codings it does not accept is decoded here as fetch would (gzip, deflate, br), so its
    // encoding and length no longer apply; any other coding (zstd) goes on as it came.
    const encoding = headers['content-encoding']
    let decoded = false
    if (encoding !== undefined) {
      headers.vary = varyOnAcceptEncoding(headers.vary)
      decoded = !browserAccepts(this.acceptEncoding, encoding) && decodedByFetch(encoding)
    }
    if (decoded) {
      delete headers['content-encoding']
      delete headers['content-length']
    }
    this.#init = { status, statusText, headers: new RecordHeaders(headers) }
    if (decoded && this.method !== 'HEAD' && !NULL_BODY_STATUS.has(status)) {
      try {
        this.#decoders = decodersFor(encoding!)
      } catch (err) {
        this.#fail(err as Error)
        this.#abort?.(err as Error)
        return false
      }
    }
    if (this.#decoders.length > 0) {
      this.#settled = true
      this.#startStream()
      return true
    }
    // undici parses everything one read brought in a row: a body that came with the headers is
    // complete before this microtask runs. Otherwise it is streamed from here on.
    this.#early = []
    queueMicrotask(() => {
      if (this.#early && !this.#done) {
        this.#settled = true
        this.#startStream()
      }
    })
    return true
  }

  onData(chunk: Buffer) {
    // undici's parser, resumed inside a chunk of a chunked body, first reports an empty piece.
    // Pausing on it (the stream is full with any chunk, even an empty one) paused again before a
    // byte was read, and the reader's pull resumed it at once: a busy loop that never ended and
    // grew without bound, so every chunked answer over ~128 KB hung the whole server.
    if (chunk.length === 0) return true
    if (this.#early) {
      this.#early.push(chunk)
      return true
    }
    const stream = this.#stream
    if (!stream || this.#cancelled) return false
    stream.enqueue(chunk)
    // Full: undici pauses the socket until the reader pulls again.
    return (stream.desiredSize ?? 0) > 0
  }

  onComplete() {
    this.#done = true
    if (this.#early) {
      // The whole body came with the headers: one buffer, written together with the head.
      const early = this.#early
      this.#early = undefined
      this.#settled = true
      const body = early.length === 1 ? early[0]! : Buffer.concat(early)
      // A Buffer is a Uint8Array, which the Response types do not know.
      this.resolve(
        new Response(early.length > 0 ? (body as Uint8Array as BodyInit) : null, this.#init)
      )
      return
    }
    if (!this.#cancelled) this.#stream?.close()
  }

  onError(err: Error) {
    if (!this.#settled && !this.#init && this.#cancelled) {
      // Nobody waits for this answer: settled without reporting the API as down.
      this.#settled = true
      clearTimeout(this.#timer)
      this.resolve(new Response(null, { status: 502 }))
      return
    }
    if (!this.#settled && !this.#init) {
      // Within the same timeout: a second try never makes the call wait longer than one.
      const resend = this.#timedOut ? undefined : this.resend
      this.resend = undefined
      if (resend) {
        try {
          resend()
          return
        } catch (again) {
          err = again as Error
        }
      }
      this.#fail(err)
      return
    }
    clearTimeout(this.#timer)
    // The body broke off: its reader sees the failure.
    if (this.#early) {
      this.#settled = true
      this.#startStream()
    }
    if (!this.#cancelled) this.#stream?.error(err)
  }

  /** Answers with a Response whose body streams the chunks so far, then the rest as it comes. */
  #startStream() {
    const early = this.#early ?? []
    this.#early = undefined
    let body: ReadableStream<Uint8Array> = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#stream = controller
        for (const chunk of early) controller.enqueue(chunk)
        if (this.#done) controller.close()
      },
      pull: () => {
        this.#resume?.()
      },
      cancel: (reason) => {
        this.#cancelled = true
        this.#abort?.(reason instanceof Error ? reason : new Error('the client went away'))
      },
    })
    if (this.#decoders.length > 0) {
      const decoded = pipeline([Readable.fromWeb(body as never), ...this.#decoders], () => {})
      body = Readable.toWeb(decoded as unknown as Readable) as ReadableStream<Uint8Array>
    }
    this.resolve(new Response(body, this.#init))
  }
}
