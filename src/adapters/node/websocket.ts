/**
 * WebSockets on Node, with the `ws` package on both sides. The server's `upgrade` event runs the
 * BFF app on the upgrade request, so the route's policy is checked as for every call
 * (core/routes/api.ts); the core then asks this module's `upgrade` hook to open the upstream
 * socket. Once the upstream has accepted, the browser's handshake completes (with the session
 * cookie the app set, if any) and frames are relayed both ways (websocket-relay.ts). Any other
 * answer of the app (a refusal, the upstream's own refusal) is written on the socket as a plain
 * HTTP response, and the connection closes.
 *
 * Requests that ask to upgrade to something else (`Upgrade: h2c`) reach the app as ordinary
 * requests when they have no body; Node stops parsing an upgrade request at its headers, so one
 * with a body is answered 400.
 */
import { IncomingMessage, ServerResponse, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { Readable } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { WebSocket, WebSocketServer } from 'ws'
import { BffError } from '../../core/errors.ts'
import type { ApiRoute } from '../../core/config/options.ts'
import type { SocketLife, UpgradeOutcome, Upgrader } from '../../core/proxy/websocket.ts'
import { createRelays, type RelayOptions } from './websocket-relay.ts'

export interface NodeWebSocketsOptions {
  /**
   * The largest message either side may send, in bytes; a larger one closes both sockets with
   * 1009. Each message is held whole in memory on its way, so this bounds a socket's memory.
   * @default 1048576 (1 MiB)
   */
  maxMessageBytes?: number
  /**
   * Bytes waiting to be sent to one side above which the other side is no longer read, until
   * they are sent (backpressure).
   * @default 1048576 (1 MiB)
   */
  highWaterMark?: number
  /**
   * Seconds between pings to each side; a side that has answered none since the last one is cut
   * off (a browser gone without closing). 0: no pings.
   * @default 30
   */
  heartbeatSeconds?: number
  /**
   * Sockets this server relays at most, those of routes without a session (`token: "none"`)
   * included, which no session's limit counts; beyond, 429 `too_many_connections`.
   * @default 20000
   */
  maxSockets?: number
}

/** What the app is asked for an upgrade request: the BFF's `app.fetch`, or a host app's. */
export type UpgradeFetch = (
  request: Request,
  env: { incoming: IncomingMessage; outgoing: undefined }
) => Response | Promise<Response>

export interface NodeWebSockets {
  /** The core's hook (`deps.upgrade` of `createBff`). */
  upgrade: Upgrader
  /** Hands `server`'s upgrade requests to `fetch` (the app that was given `upgrade`). */
  attach(server: Server, fetch: UpgradeFetch): void
  /** Sockets open now (each a pair: the browser's and the upstream's). */
  readonly size: number
  /** Closes every socket (1001, `server_shutdown`), cutting those that do not close within 1 s. */
  close(): Promise<void>
}

/** The upstream's refusal body passed to the browser, at most this many bytes. */
const MAX_REFUSAL_BODY = 64 * 1024
// RFC 6455 4.1: 16 random bytes in base64.
const KEY = /^[+/0-9A-Za-z]{22}==$/
// A Host header a URL can be built from: a name or an IP literal, and a port.
const HOST = /^(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/

/** A listener of the module's own: one made inside `upgrade` would hold the request. */
const ignore = () => {}

/** An upstream socket accepted for an upgrade request whose handshake is not complete yet. */
interface Pending {
  upstream: WebSocket
  life: SocketLife
  /** The subprotocol the upstream chose among the browser's, or '' for none. */
  protocol: string
}

export function nodeWebSockets(options: NodeWebSocketsOptions = {}): NodeWebSockets {
  const maxPayload = options.maxMessageBytes ?? 1024 * 1024
  const relayOptions: RelayOptions = {
    highWaterMark: options.highWaterMark ?? 1024 * 1024,
    heartbeatMs: (options.heartbeatSeconds ?? 30) * 1000,
  }
  const relays = createRelays(relayOptions)
  const maxSockets = options.maxSockets ?? 20_000
  // Upstreams being asked (an accepted one counts among the relays a moment later).
  let opening = 0
  // Upgrade requests this module is handling, and those whose upstream has accepted.
  const handling = new WeakSet<IncomingMessage>()
  const pending = new WeakMap<IncomingMessage, Pending>()
  const setCookies = new WeakMap<IncomingMessage, string[]>()
  const server = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    // No compression: a deflate context costs ~300 KB per socket and side.
    perMessageDeflate: false,
    maxPayload,
    // The subprotocol the upstream chose, which the browser offered (the client checked that).
    handleProtocols: (_offered, req) => pending.get(req)?.protocol || false,
  })
  // The session cookie the app set (a refreshed session in the `cookie` store) goes on the 101.
  server.on('headers', (headers, req) => {
    for (const cookie of setCookies.get(req) ?? []) headers.push(`Set-Cookie: ${cookie}`)
  })

  const upgrade: Upgrader = (c, up) => {
    const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming
    if (!(incoming instanceof IncomingMessage) || !handling.has(incoming)) {
      // Not from a server this module is attached to (e.g. `app.request()`).
      throw new BffError(501, 'not_supported', 'WebSockets are not available on this server.')
    }
    if (relays.size + opening >= maxSockets) {
      throw new BffError(
        429,
        'too_many_connections',
        'This server has as many open connections as it may have; try again later.'
      )
    }
    opening++
    return new Promise<UpgradeOutcome>((resolve, reject) => {
      // The browser's subprotocols go as a header rather than as `ws`'s own list: `ws` fails an
      // answer that picks none of its list, which browsers (and so upstreams) accept.
      const headers = Object.fromEntries(up.headers)
      if (up.protocols.length) headers['sec-websocket-protocol'] = up.protocols.join(', ')
      let protocol = ''
      const upstream = new WebSocket(up.url, [], {
        headers,
        perMessageDeflate: false,
        maxPayload,
        followRedirects: false,
        ...tlsOptions(up.route),
      })
      let settled = false
      let timedOut = false
      const settle = (then: () => void) => {
        if (settled) return
        settled = true
        opening--
        clearTimeout(timer)
        incoming.socket.off('close', gone)
        // This request's listeners hold it (and its context): an open socket keeps none of them.
        upstream.removeAllListeners('error').removeAllListeners('unexpected-response')
        upstream.removeAllListeners('open').removeAllListeners('upgrade').on('error', ignore)
        then()
      }
      // The browser left while the upstream was being asked.
      const gone = () => settle(() => (upstream.terminate(), reject(unavailable())))
      incoming.socket.once('close', gone)
      const timer = setTimeout(() => {
        timedOut = true
        upstream.terminate()
      }, up.timeoutMs)
      upstream.on('error', (err) =>
        settle(() =>
          reject(
            timedOut
              ? new BffError(504, 'upstream_timeout', 'The API did not answer in time.', {
                  cause: err,
                })
              : unavailable(err)
          )
        )
      )
      upstream.once('upgrade', (res) => {
        // One of the browser's is taken off the answer before `ws` reads it (see above); any
        // other is left there for `ws` to refuse, a 502.
        const chosen = res.headers['sec-websocket-protocol']
        if (chosen !== undefined && up.protocols.includes(chosen)) {
          protocol = chosen
          delete res.headers['sec-websocket-protocol']
        }
      })
      upstream.once('open', () =>
        settle(() => {
          // Nothing is read from the upstream until the browser's socket is there to take it.
          upstream.pause()
          pending.set(incoming, { upstream, life: up.life, protocol })
          // A placeholder: the upgrade handler below completes the handshake instead.
          resolve({ accepted: new Response(null, { status: 200 }) })
        })
      )
      upstream.once('unexpected-response', (req, res) => {
        void readRefusal(res).then(
          (refused) =>
            settle(() => {
              req.destroy()
              upstream.terminate()
              resolve({ refused })
            }),
          (err) => settle(() => (upstream.terminate(), reject(unavailable(err))))
        )
      })
    })
  }

  async function handle(
    fetch: UpgradeFetch,
    httpServer: Server,
    req: IncomingMessage,
    socket: Socket,
    head: Buffer
  ) {
    socket.on('error', () => socket.destroy())
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding']) {
        return refuse(
          socket,
          400,
          'invalid_request',
          'An upgrade request cannot carry a body here.'
        )
      }
      // An ordinary request that mentions an upgrade (h2c): served as one, the upgrade ignored.
      const res = new ServerResponse(req)
      res.assignSocket(socket)
      res.shouldKeepAlive = false
      res.on('finish', () => socket.end())
      if (head.length) socket.unshift(head)
      httpServer.emit('request', req, res)
      return
    }
    const key = req.headers['sec-websocket-key']
    const version = req.headers['sec-websocket-version']
    if (key === undefined || !KEY.test(key)) {
      return refuse(socket, 400, 'invalid_request', 'The Sec-WebSocket-Key header is malformed.')
    }
    if (version !== '13') {
      // RFC 6455 4.4: the versions this server speaks.
      return refuse(socket, 426, 'invalid_request', 'Only WebSocket version 13 is supported.', {
        'Sec-WebSocket-Version': '13',
      })
    }
    const request = toRequest(req)
    if (!request) return refuse(socket, 400, 'invalid_request', 'The request is malformed.')

    handling.add(req)
    let response: Response
    try {
      response = await fetch(request, { incoming: req, outgoing: undefined })
    } catch {
      response = Response.json(
        { error: 'internal_error', message: 'Something went wrong on our side.' },
        { status: 500 }
      )
    }
    const accepted = pending.get(req)
    if (!accepted || response.status !== 200 || socket.destroyed || !socket.writable) {
      pending.delete(req)
      if (accepted) {
        accepted.upstream.terminate()
        accepted.life.release()
      }
      return writeResponse(req, socket, response)
    }
    await response.body?.cancel().catch(() => {})
    setCookies.set(req, response.headers.getSetCookie())
    let completed = false
    // Synchronous: the callback has run when it returns, unless the handshake was refused.
    server.handleUpgrade(req, socket, head, (browser) => {
      completed = true
      relays.relay(browser, accepted.upstream, accepted.life)
    })
    pending.delete(req)
    if (!completed) {
      accepted.upstream.terminate()
      accepted.life.release()
    }
  }

  return {
    upgrade,
    attach(httpServer, fetch) {
      httpServer.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
        void handle(fetch, httpServer, req, socket, head).catch(() => socket.destroy())
      })
    },
    get size() {
      return relays.size
    },
    close: () => relays.close(),
  }
}

function unavailable(cause?: unknown): BffError {
  return new BffError(502, 'upstream_unavailable', 'The API could not be reached.', { cause })
}

/** Mutual TLS to the upstream: the route's PEM texts, as the HTTP transport presents them. */
function tlsOptions(route: ApiRoute): { cert?: string; key?: string; ca?: string } {
  const { cert, key, ca } = route.tls ?? {}
  return { ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(ca ? { ca } : {}) }
}

/** The upstream's answer to the upgrade as a Response: its status, headers and a short body. */
async function readRefusal(res: IncomingMessage): Promise<Response> {
  const status = res.statusCode ?? 502
  if (status < 200 || status > 599) throw new Error(`the upstream answered ${status}`)
  const headers = new Headers()
  for (let i = 0; i < res.rawHeaders.length; i += 2) {
    headers.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!)
  }
  headers.delete('content-length')
  headers.delete('transfer-encoding')
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of res as AsyncIterable<Buffer>) {
    size += chunk.length
    // Longer than any error an API sends: the status goes on, the body does not.
    if (size > MAX_REFUSAL_BODY) return new Response(null, { status, headers })
    chunks.push(chunk)
  }
  const body = size > 0 && status !== 204 && status !== 304 ? Buffer.concat(chunks) : null
  return new Response(body as Uint8Array as BodyInit | null, { status, headers })
}

/** The upgrade request as a fetch Request for the app (GET: no body). */
function toRequest(req: IncomingMessage): Request | undefined {
  const host = req.headers.host?.toLowerCase()
  if (!host || !HOST.test(host) || !req.url?.startsWith('/')) return undefined
  const scheme = (req.socket as TLSSocket).encrypted ? 'https' : 'http'
  const headers: [string, string][] = []
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    headers.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!])
  }
  try {
    return new Request(`${scheme}://${host}${req.url}`, { method: 'GET', headers })
  } catch {
    return undefined
  }
}

/** Writes the app's answer to an upgrade it did not accept as a plain HTTP response, and closes. */
function writeResponse(req: IncomingMessage, socket: Socket, response: Response): void {
  if (socket.destroyed) {
    void response.body?.cancel().catch(() => {})
    return
  }
  const res = new ServerResponse(req)
  res.assignSocket(socket)
  res.shouldKeepAlive = false
  res.on('finish', () => socket.end())
  const headers: Record<string, string | string[]> = {}
  for (const [name, value] of response.headers) if (name !== 'set-cookie') headers[name] = value
  const cookies = response.headers.getSetCookie()
  if (cookies.length) headers['set-cookie'] = cookies
  res.writeHead(response.status, response.statusText || undefined, headers)
  if (!response.body) {
    res.end()
    return
  }
  const body = Readable.fromWeb(response.body as never)
  body.on('error', () => socket.destroy())
  body.pipe(res)
}

/** A refusal before the app runs: JSON as every other, then the connection closes. */
function refuse(
  socket: Socket,
  status: number,
  error: string,
  message: string,
  extra: Record<string, string> = {}
): void {
  const body = JSON.stringify({ error, message })
  const reason = status === 426 ? 'Upgrade Required' : 'Bad Request'
  const lines = Object.entries({
    'Content-Type': 'application/json',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    Connection: 'close',
    ...extra,
  }).map(([name, value]) => `${name}: ${value}\r\n`)
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${lines.join('')}\r\n${body}`)
}
