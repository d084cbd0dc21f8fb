/**
 * WebSockets on Cloudflare Workers: the core's `upgrade` hook (core/proxy/websocket.ts) over the
 * runtime's own WebSocket API. The route's policy has been checked as for every call
 * (core/routes/api.ts); this module asks the upstream for its socket with a `fetch` carrying
 * `Upgrade: websocket` (the route's `mtls_certificates` binding's fetch when it has one), and on a
 * 101 answers the browser with the client end of a `WebSocketPair` whose server end it relays to
 * the upstream's socket (websocket-relay.ts). Any other answer of the upstream is its refusal.
 *
 * The Worker's entry calls `settle` with each answer: an upgrade the upstream accepted whose 101
 * never went out (the app failed after the upgrade) has its sockets closed and its place freed.
 */
import type { Context } from 'hono'
import { BffError } from '../../core/errors.ts'
import { INTERNAL_CLOSE } from '../../core/proxy/socket-close.ts'
import {
  isWebSocketUpgrade,
  type UpgradeOutcome,
  type Upgrader,
} from '../../core/proxy/websocket.ts'
import { fetcherOf } from './mtls.ts'
import { acceptForRelay, createRelays, type WorkersSocket } from './websocket-relay.ts'

export interface WorkersWebSocketsOptions {
  /**
   * The largest message either side may send, in bytes; a larger one closes both sockets with
   * 1009. The runtime takes messages of up to 32 MiB itself (and closes with 1009 above that).
   * @default 1048576 (1 MiB), as on Node
   */
  maxMessageBytes?: number
  /**
   * Sockets this isolate relays at most, those of routes without a session (`token: "none"`)
   * included; beyond, 429 `too_many_connections`.
   * @default 20000
   */
  maxSockets?: number
}

export interface WorkersWebSockets {
  /** The core's hook (`deps.upgrade` of `createBff`). */
  upgrade: Upgrader
  /**
   * The app answered `request` with `response`: an upgrade accepted upstream but not answered
   * with its 101 (an error afterwards) is closed on both sides (1011) and its place freed.
   */
  settle(request: Request, response: Response): void
  /** Pairs relayed by this isolate now. */
  readonly size: number
}

type Pair = new () => { 0: WorkersSocket; 1: WorkersSocket }

export function workersWebSockets(options: WorkersWebSocketsOptions = {}): WorkersWebSockets {
  const relays = createRelays({ maxMessageBytes: options.maxMessageBytes ?? 1024 * 1024 })
  const maxSockets = options.maxSockets ?? 20_000
  // Upstreams being asked (an accepted one counts among the relays at once).
  let opening = 0
  // Upgrades accepted upstream whose 101 has not gone out yet, by the request they answer.
  const unanswered = new WeakMap<Request, () => void>()

  const upgrade: Upgrader = async (c, up) => {
    if (relays.size + opening >= maxSockets) {
      throw new BffError(
        429,
        'too_many_connections',
        'This server has as many open connections as it may have; try again later.'
      )
    }
    const headers = new Headers(up.headers)
    headers.set('Upgrade', 'websocket')
    if (up.protocols.length) headers.set('Sec-WebSocket-Protocol', up.protocols.join(', '))
    // Workers open a WebSocket with an upgrade request to the http(s) URL.
    const url = new URL(up.url)
    url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:'
    const send = fetchOf(c, up.route.tls?.binding)
    const abort = new AbortController()
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      abort.abort()
    }, up.timeoutMs)
    opening++
    let answer: Response
    try {
      answer = await send(url, { headers, redirect: 'manual', signal: abort.signal })
    } catch (err) {
      throw timedOut
        ? new BffError(504, 'upstream_timeout', 'The API did not answer in time.', { cause: err })
        : unavailable(err)
    } finally {
      opening--
      clearTimeout(timer)
    }
    const upstream = (answer as { webSocket?: WorkersSocket | null }).webSocket
    if (!upstream) return { refused: answer }
    // The subprotocol the upstream chose must be one the browser offered (RFC 6455 4.1), as a
    // browser would insist; none at all is accepted, as browsers accept it.
    const protocol = answer.headers.get('sec-websocket-protocol')
    if (protocol !== null && !up.protocols.includes(protocol)) {
      upstream.accept()
      upstream.close(1002, 'protocol_not_offered')
      throw unavailable(new Error('the upstream chose a subprotocol the browser did not offer'))
    }
    const Pair = (globalThis as unknown as { WebSocketPair: Pair }).WebSocketPair
    const { 0: client, 1: browser } = new Pair()
    acceptForRelay(browser)
    acceptForRelay(upstream)
    const closeBoth = relays.relay(browser, upstream, up.life)
    unanswered.set(c.req.raw, () => closeBoth(INTERNAL_CLOSE, 'upgrade_failed'))
    const accepted = new Response(null, {
      status: 101,
      headers: protocol ? { 'Sec-WebSocket-Protocol': protocol } : {},
      webSocket: client,
    } as ResponseInit)
    return { accepted } satisfies UpgradeOutcome
  }

  return {
    upgrade,
    settle(request, response) {
      const cancel = unanswered.get(request)
      if (!cancel) return
      unanswered.delete(request)
      if (response.status !== 101) cancel()
    },
    get size() {
      return relays.size
    },
  }
}

// RFC 6455 4.1: 16 random bytes in base64.
const KEY = /^[+/0-9A-Za-z]{22}==$/

/**
 * The refusal of a WebSocket handshake the runtime let through although it is malformed (workerd
 * completes one with any key), before the app runs, as the Node server refuses it: 400 for a bad
 * `Sec-WebSocket-Key`, 426 for a version other than 13 (RFC 6455 4.4). A header the Worker does
 * not see at all is left to the runtime, which answers the handshake: Cloudflare's edge may take
 * them off.
 */
export function handshakeRefusal(request: Request): Response | undefined {
  if (!isWebSocketUpgrade(request)) return undefined
  const refuse = (status: number, message: string, headers: Record<string, string> = {}) =>
    Response.json(
      { error: 'invalid_request', message },
      { status, headers: { 'Cache-Control': 'no-store', ...headers } }
    )
  const key = request.headers.get('sec-websocket-key')
  if (key !== null && !KEY.test(key)) {
    return refuse(400, 'The Sec-WebSocket-Key header is malformed.')
  }
  const version = request.headers.get('sec-websocket-version')
  if (version !== null && version !== '13') {
    return refuse(426, 'Only WebSocket version 13 is supported.', { 'Sec-WebSocket-Version': '13' })
  }
  return undefined
}

/** The global fetch, or the route's mtls_certificates binding's (checked at start-up). */
function fetchOf(c: Context, binding: string | undefined): typeof fetch {
  if (binding === undefined) return (input, init) => fetch(input, init)
  const fetcher = fetcherOf(c.env as Record<string, unknown>, binding)
  if (!fetcher) throw new Error(`mtls_certificates binding ${binding} missing`)
  return (input, init) => fetcher.fetch(input, init)
}

function unavailable(cause?: unknown): BffError {
  return new BffError(502, 'upstream_unavailable', 'The API could not be reached.', { cause })
}
