/**
 * The demo API's live routes, for the BFF's WebSocket relay and its streamed answers:
 *
 *   WS  /live/feed  -> a JSON message at once and then every second, `{ type: "tick", n, sub, time }`,
 *                      `sub` read from the token of the upgrade request (checked as every HTTP call's
 *                      is: api-auth.ts); a text message from the page comes back as
 *                      `{ type: "echo", n, sub, text }`, a binary one as it came. Without a good
 *                      token the upgrade is answered as an HTTP call would be (401 and its challenge).
 *   GET /ticker     -> Server-Sent Events, `event: tick` with `{ n, sub, time }` at once and then
 *                      every second, until the client goes (or `?count=` events were sent)
 *
 * The token is checked once, on the upgrade: what a WebSocket upstream behind the BFF sees. The
 * BFF closes the socket when the session ends, so the feed need not ask the IdP again.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type WebSocket } from 'ws'
import type { Authenticate, Refusal } from './api-auth.ts'

export const FEED_PATH = '/live/feed'
/** How often the feed and the ticker speak, in milliseconds. */
export const LIVE_INTERVAL_MS = 1000
/** The largest message the feed takes from a page; a larger one closes it (1009). */
const MAX_MESSAGE_BYTES = 4096
/** The most events one ticker request may ask for with `?count=`. */
const MAX_COUNT = 3600

export interface LiveFeed {
  /** Feed sockets open now. */
  readonly size: number
  /** Closes every feed socket (1001) and stops taking upgrades. */
  close(): void
}

/** Serves the feed on `server`'s upgrade requests; any other path is answered 404. */
export function attachLiveFeed(server: Server, authenticate: Authenticate): LiveFeed {
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: MAX_MESSAGE_BYTES,
  })
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // A client gone mid-handshake must not crash the API.
    socket.on('error', () => socket.destroy())
    const url = new URL(req.url ?? '/', 'http://api')
    if (url.pathname !== FEED_PATH) {
      return refuse(socket, { status: 404, headers: {}, body: { error: 'not_found' } })
    }
    authenticate(req, url)
      .then((checked) => {
        if ('refused' in checked) return refuse(socket, checked.refused)
        if (socket.destroyed) return
        const sub = checked.introspection.sub ?? 'client'
        wss.handleUpgrade(req, socket, head, (ws) => feed(ws, sub))
      })
      .catch((error: unknown) => {
        console.error('[demo-api] feed upgrade failed', error)
        refuse(socket, { status: 500, headers: {}, body: { error: 'internal_error' } })
      })
  }
  server.on('upgrade', upgrade)
  return {
    get size() {
      return wss.clients.size
    },
    close() {
      server.off('upgrade', upgrade)
      for (const ws of wss.clients) ws.close(1001, 'server_shutdown')
      // One that does not answer the close in a moment is cut off.
      setTimeout(() => {
        for (const ws of wss.clients) ws.terminate()
      }, 500).unref()
      wss.close()
    },
  }
}

/** One page's feed: ticks until the socket closes, echoes what the page sends. */
function feed(ws: WebSocket, sub: string): void {
  let n = 0
  const tick = () => {
    n++
    ws.send(JSON.stringify({ type: 'tick', n, sub, time: new Date().toISOString() }))
  }
  tick()
  const timer = setInterval(tick, LIVE_INTERVAL_MS)
  ws.on('message', (data, isBinary) => {
    if (isBinary) return ws.send(data, { binary: true })
    ws.send(JSON.stringify({ type: 'echo', n, sub, text: data.toString() }))
  })
  ws.on('error', () => ws.terminate())
  ws.on('close', () => clearInterval(timer))
}

/** An upgrade refused: a plain HTTP answer on the socket, then the connection closes. */
function refuse(socket: Duplex, { status, headers, body }: Refusal): void {
  if (socket.destroyed) return
  const json = JSON.stringify(body)
  const lines = [
    `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    'Cache-Control: no-store',
    `Content-Length: ${Buffer.byteLength(json)}`,
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ]
  socket.end(`${lines.join('\r\n')}\r\n\r\n${json}`)
}

/** `GET /ticker`: one Server-Sent Event a second for `sub`, until the client goes. */
export function sendTicker(req: IncomingMessage, res: ServerResponse, url: URL, sub: string): void {
  const asked = url.searchParams.get('count')
  const count = asked === null ? Infinity : Number(asked)
  if (asked !== null && (!Number.isInteger(count) || count < 1 || count > MAX_COUNT)) {
    const json = JSON.stringify({
      error: 'invalid_request',
      message: `count must be a whole number from 1 to ${MAX_COUNT}`,
    })
    res.writeHead(400, { 'content-type': 'application/json; charset=utf-8' })
    res.end(json)
    return
  }
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    // Proxies between here and the page must not hold the events back (nginx's convention).
    'x-accel-buffering': 'no',
  })
  let n = 0
  const tick = () => {
    n++
    const data = JSON.stringify({ n, sub, time: new Date().toISOString() })
    res.write(`id: ${n}\nevent: tick\ndata: ${data}\n\n`)
    if (n >= count) stop(true)
  }
  const timer = setInterval(tick, LIVE_INTERVAL_MS)
  const stop = (end: boolean) => {
    clearInterval(timer)
    if (end) res.end()
  }
  req.socket.setNoDelay(true)
  res.on('close', () => stop(false))
  tick()
}
