/**
 * Upstream API calls on Node over `node:http` with keep-alive agents, in place of WHATWG fetch.
 * The contract is core/proxy.ts's `forward`: the same headers stripped and set, 502
 * `upstream_unavailable` when the upstream cannot be reached, 504 `upstream_timeout` when its
 * headers do not come in time, redirects handed back, compressed answers decoded as fetch decodes
 * them, bodies streamed both ways. What it saves is fetch's machinery around each call: Request,
 * Headers and AbortSignal objects, web streams in both directions and a second copy of the
 * response headers. Node-only, so it lives outside src/core; requests that did not come from a
 * Node HTTP/1 server (e.g. `app.request()` in tests) go through `forward` over fetch instead.
 */
import {
  Agent as HttpAgent,
  IncomingMessage,
  request as httpRequest,
  type ClientRequest,
  type OutgoingHttpHeaders,
  type RequestOptions,
} from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream'
import zlib from 'node:zlib'
import { BffError } from './core/errors.ts'
import { forward, REQUEST_STRIP, RESPONSE_STRIP, type Forwarder } from './core/proxy.ts'

export interface NodeForwardOptions {
  /**
   * Agents for http and https upstreams. Default: keep-alive agents of this forwarder.
   * @example { http: new Agent({ keepAlive: true, maxSockets: 256 }) }
   */
  agents?: { http?: HttpAgent; https?: HttpsAgent }
  /** fetch for requests that did not come from a Node server. Default: the global fetch. */
  fetch?: typeof fetch
}

const REQUEST_DROP = new Set(REQUEST_STRIP)
const RESPONSE_DROP = new Set(RESPONSE_STRIP)
// As fetch (RFC 9110): these answers have no body, whatever their headers say.
const NULL_BODY_STATUS = new Set([101, 204, 205, 304])
const MAX_CONTENT_ENCODINGS = 5

/**
 * A `Forwarder` over node:http. Reads the request straight from the server's IncomingMessage and
 * answers with a Response whose headers are a plain record, which @hono/node-server writes as is.
 * A body that has fully arrived with the headers (most JSON answers) is handed over as one buffer,
 * so head and body leave in one write; anything still arriving is streamed with backpressure.
 */
export function nodeForward(options: NodeForwardOptions = {}): Forwarder {
  const agents = {
    http: options.agents?.http ?? new HttpAgent({ keepAlive: true }),
    https: options.agents?.https ?? new HttpsAgent({ keepAlive: true }),
  }
  const fallbackFetch = options.fetch ?? ((input, init) => fetch(input, init))
  // X-Forwarded-Host/-Proto come from the BFF's own public origin, the same on every call.
  let forwardedFor: { baseUrl: string; host: string; proto: string } | undefined

  return function nodeForward(c, target, call) {
    const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming
    // Only an untouched HTTP/1 request can be read here; anything else takes the fetch path.
    if (!(incoming instanceof IncomingMessage) || incoming.readableDidRead) {
      return forward(c.req.raw, target, { ...call, fetch: fallbackFetch })
    }
    if (forwardedFor?.baseUrl !== call.baseUrl) {
      const base = new URL(call.baseUrl)
      forwardedFor = { baseUrl: call.baseUrl, host: base.host, proto: base.protocol.slice(0, -1) }
    }
    const method = incoming.method ?? 'GET'
    const headers = requestHeaders(incoming.rawHeaders)
    headers.authorization = `Bearer ${call.accessToken}`
    headers['x-forwarded-host'] = forwardedFor.host
    headers['x-forwarded-proto'] = forwardedFor.proto
    if (call.clientIp) {
      const prior = headers['x-forwarded-for'] as string | undefined
      headers['x-forwarded-for'] = prior ? `${prior}, ${call.clientIp}` : call.clientIp
    }
    // What fetch adds to every request that lacks them, so an upstream sees the same request
    // whichever transport sent it (browsers send their own anyway).
    headers.accept ??= '*/*'
    headers['accept-language'] ??= '*'
    headers['sec-fetch-mode'] ??= 'cors'
    headers['user-agent'] ??= 'node'
    headers['accept-encoding'] ??=
      target.protocol === 'https:' ? 'br, gzip, deflate' : 'gzip, deflate'
    const hasBody = method !== 'GET' && method !== 'HEAD'
    // Content-Length was dropped with the other client framing headers, as fetch does with a
    // streamed body: the body goes chunked, however the client framed it.
    if (hasBody) headers['transfer-encoding'] = 'chunked'

    const https = target.protocol === 'https:'
    const requestOptions: RequestOptions = {
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      path: target.pathname + target.search,
      method,
      headers,
      agent: https ? agents.https : agents.http,
    }

    return new Promise<Response>((resolve, reject) => {
      const unavailable = (cause: unknown) =>
        new BffError(502, 'upstream_unavailable', 'The API could not be reached.', { cause })
      let upstream: ClientRequest
      try {
        upstream = (https ? httpsRequest : httpRequest)(requestOptions)
      } catch (err) {
        // A header value Node refuses to send, say: fetch would have failed the call too.
        reject(unavailable(err))
        return
      }
      let timedOut = false
      // The timeout covers waiting for the upstream's headers only; a long streamed body is fine.
      const timer = setTimeout(() => {
        timedOut = true
        upstream.destroy(new Error(`no response headers within ${call.timeoutMs} ms`))
      }, call.timeoutMs)
      // `on`, not `once`: a request can fail again later (mid-body), and a second unhandled
      // 'error' would end the process. Once settled, the promise ignores it.
      upstream.on('error', (err) => {
        clearTimeout(timer)
        reject(
          timedOut
            ? new BffError(504, 'upstream_timeout', 'The API did not answer in time.', {
                cause: err,
              })
            : unavailable(err)
        )
      })
      upstream.once('response', (answer) => {
        clearTimeout(timer)
        try {
          respond(answer, method, resolve)
        } catch (err) {
          answer.destroy()
          reject(unavailable(err))
        }
      })

      if (!hasBody) {
        upstream.end()
        return
      }
      // A client that goes away mid-upload takes the upstream call with it.
      const abandon = () => {
        if (!incoming.complete) upstream.destroy(new Error('the client went away'))
      }
      incoming.once('close', abandon)
      upstream.once('close', () => incoming.off('close', abandon))
      incoming.pipe(upstream)
    })
  }
}

/** The client's headers as fetch would send them: names lower-cased, repeats joined with ", ". */
function requestHeaders(raw: string[]): OutgoingHttpHeaders {
  const headers: Record<string, string> = {}
  let connection: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (name === 'connection') connection = connection ? `${connection}, ${value}` : value
    if (REQUEST_DROP.has(name)) continue
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  // Headers the client named in Connection are hop-by-hop too (RFC 9110 7.6.1).
  if (connection)
    for (const name of connection.split(',')) delete headers[name.trim().toLowerCase()]
  return headers
}

/** The upstream's headers for the browser, cleaned as core/proxy.ts's `responseHeaders` does. */
function responseHeaders(raw: string[]): Record<string, string> {
  const headers: Record<string, string> = {}
  let connection: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    const value = raw[i + 1]!
    if (name === 'connection') connection = connection ? `${connection}, ${value}` : value
    if (RESPONSE_DROP.has(name)) continue
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value
  }
  if (connection)
    for (const name of connection.split(',')) delete headers[name.trim().toLowerCase()]
  return headers
}

function respond(answer: IncomingMessage, method: string, resolve: (response: Response) => void) {
  const status = answer.statusCode ?? 502
  const headers = responseHeaders(answer.rawHeaders)
  const encoding = headers['content-encoding']
  // A compressed body is decoded (as fetch does), so its encoding and length no longer apply.
  if (encoding !== undefined) {
    delete headers['content-encoding']
    delete headers['content-length']
  }
  const init = { status, statusText: answer.statusMessage ?? '', headers }
  const decoders =
    encoding === undefined || method === 'HEAD' || NULL_BODY_STATUS.has(status)
      ? []
      : decodersFor(encoding)
  if (decoders.length > 0) {
    const decoded = pipeline([answer, ...decoders], () => {}) as unknown as Readable
    resolve(new Response(streamOf(decoded, []), init))
    return
  }

  // Whatever has arrived together with the headers is collected; if the body is complete by the
  // next turn of the event loop it goes out as one buffer, otherwise it is streamed from here on.
  const early: Buffer[] = []
  let settled = false
  const onData = (chunk: Buffer) => early.push(chunk)
  // A body that breaks off this early is streamed too, so its reader sees the failure.
  const onError = () => toStream()
  const onEnd = () => {
    if (settled) return
    settled = true
    answer.off('data', onData)
    answer.off('error', onError)
    // A Buffer is a Uint8Array, which the Response types do not know.
    const body = (early.length === 1 ? early[0]! : Buffer.concat(early)) as Uint8Array as BodyInit
    resolve(new Response(early.length > 0 ? body : null, init))
  }
  const toStream = () => {
    if (settled) return
    settled = true
    answer.off('data', onData)
    answer.off('end', onEnd)
    answer.pause()
    resolve(new Response(streamOf(answer, early), init))
    answer.off('error', onError)
  }
  answer.on('data', onData)
  answer.once('end', onEnd)
  answer.once('error', onError)
  setImmediate(toStream)
}

/** `source` as a web stream, after `first`, with backpressure; cancelling it destroys the source. */
function streamOf(source: Readable, first: Buffer[]): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of first) controller.enqueue(chunk)
      source.on('data', (chunk: Buffer) => {
        controller.enqueue(chunk)
        if ((controller.desiredSize ?? 0) <= 0) source.pause()
      })
      source.once('end', () => controller.close())
      source.on('error', (err) => controller.error(err))
      if (source.errored) controller.error(source.errored)
    },
    pull() {
      source.resume()
    },
    cancel(reason) {
      source.destroy(reason instanceof Error ? reason : undefined)
    },
  })
}

/** zlib decoders for a Content-Encoding list, as fetch builds them; none for an unknown coding. */
function decodersFor(contentEncoding: string): Transform[] {
  const codings = contentEncoding.toLowerCase().split(',')
  if (codings.length > MAX_CONTENT_ENCODINGS) {
    throw new Error(`too many content-encodings in response: ${codings.length}`)
  }
  const decoders: Transform[] = []
  for (let i = codings.length - 1; i >= 0; i--) {
    const coding = codings[i]!.trim()
    const flush = { flush: zlib.constants.Z_SYNC_FLUSH, finishFlush: zlib.constants.Z_SYNC_FLUSH }
    if (coding === 'gzip' || coding === 'x-gzip') decoders.push(zlib.createGunzip(flush))
    else if (coding === 'deflate') decoders.push(new Inflate(flush))
    else if (coding === 'br') {
      decoders.push(
        zlib.createBrotliDecompress({
          flush: zlib.constants.BROTLI_OPERATION_FLUSH,
          finishFlush: zlib.constants.BROTLI_OPERATION_FLUSH,
        })
      )
    } else return []
  }
  return decoders
}

/** "deflate" as fetch reads it: zlib-wrapped when the first byte says so, raw deflate otherwise. */
class Inflate extends Transform {
  #inflate: Transform | undefined
  constructor(private readonly zlibOptions: zlib.ZlibOptions) {
    super()
  }
  override _transform(chunk: Buffer, encoding: BufferEncoding, callback: TransformCallback) {
    if (!this.#inflate) {
      if (chunk.length === 0) return callback()
      this.#inflate =
        (chunk[0]! & 15) === 8
          ? zlib.createInflate(this.zlibOptions)
          : zlib.createInflateRaw(this.zlibOptions)
      this.#inflate.on('data', (data: Buffer) => this.push(data))
      this.#inflate.on('end', () => this.push(null))
      this.#inflate.on('error', (err) => this.destroy(err))
    }
    this.#inflate.write(chunk, encoding, callback)
  }
  override _final(callback: TransformCallback) {
    this.#inflate?.end()
    this.#inflate = undefined
    callback()
  }
}
