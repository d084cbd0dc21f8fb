/**
 * The frames of an open WebSocket pair (the browser's and the upstream's), relayed both ways: text
 * stays text and binary stays binary, each message as it came (its bytes are never decoded);
 * a side is no longer read while more than `highWaterMark` bytes wait to go to the other; close
 * codes and reasons pass through; pings keep both connections honest. The session's end
 * (`SocketLife.onClose`) closes both sides at once.
 */
import { WebSocket, type RawData } from 'ws'
import { GOING_AWAY_CLOSE, partnerClose } from '../../core/proxy/socket-close.ts'
import type { SocketLife } from '../../core/proxy/websocket.ts'

export interface RelayOptions {
  /** Bytes waiting for one side above which the other side is paused. */
  highWaterMark: number
  /** Milliseconds between pings; 0: none. */
  heartbeatMs: number
}

export interface Relays {
  /** Relays `browser` and `upstream` until either closes; `life` is released then. */
  relay(browser: WebSocket, upstream: WebSocket, life: SocketLife): void
  readonly size: number
  /** Closes every pair (1001), cutting those still open after 1 s. */
  close(): Promise<void>
}

export function createRelays(options: RelayOptions): Relays {
  const open = new Set<[WebSocket, WebSocket]>()
  // Sockets that have shown life (a pong or a message) since the last ping.
  const alive = new WeakSet<WebSocket>()
  let heartbeat: ReturnType<typeof setInterval> | undefined

  const beat = () => {
    for (const pair of open) {
      for (const ws of pair) {
        // A side not read (backpressure) or with data still to send cannot answer in time; TCP
        // finds a dead peer there.
        if (ws.isPaused || ws.bufferedAmount > 0) continue
        if (!alive.has(ws)) {
          ws.terminate()
          continue
        }
        alive.delete(ws)
        ws.ping()
      }
    }
  }

  return {
    relay(browser, upstream, life) {
      const pair: [WebSocket, WebSocket] = [browser, upstream]
      open.add(pair)
      if (options.heartbeatMs > 0 && !heartbeat) {
        heartbeat = setInterval(beat, options.heartbeatMs)
        heartbeat.unref()
      }
      let released = false
      const finished = () => {
        if (released) return
        released = true
        open.delete(pair)
        if (open.size === 0 && heartbeat) {
          clearInterval(heartbeat)
          heartbeat = undefined
        }
        life.release()
      }
      for (const [from, to] of [pair, [upstream, browser] as const]) {
        alive.add(from)
        from.on('pong', () => alive.add(from))
        // A side that broke the protocol (a message too large, text that is not UTF-8) was sent
        // that close code by `ws`; its own close then says 1006. The other side gets the code.
        let broke: number | undefined
        from.on('error', (err: Error & { code?: string }) => (broke = protocolClose(err.code)))
        pipe(from, to, options.highWaterMark, () => alive.add(from))
        from.on('close', (code, reason) => {
          finished()
          closeWith(to, code === 1006 && broke ? broke : code, reason)
        })
      }
      // The session ended (or its token can no longer be renewed): both sides are told why.
      life.onClose((code, reason) => {
        browser.close(code, reason)
        upstream.close(code, reason)
      })
      // The upstream went away while the browser's handshake completed: its close came unheard.
      if (upstream.readyState !== WebSocket.OPEN) {
        browser.close(1011, 'upstream_closed')
        upstream.terminate()
        return
      }
      // Anything the upstream sent before the browser's socket was there waited in its socket.
      upstream.resume()
    },
    get size() {
      return open.size
    },
    async close() {
      const closing = [...open].flat().map(
        (ws) =>
          new Promise<void>((resolve) => {
            if (ws.readyState === WebSocket.CLOSED) return resolve()
            ws.once('close', () => resolve())
            ws.close(GOING_AWAY_CLOSE, 'server_shutdown')
          })
      )
      let timer: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        Promise.all(closing),
        new Promise((resolve) => (timer = setTimeout(resolve, 1000))),
      ])
      clearTimeout(timer)
      for (const ws of [...open].flat()) ws.terminate()
      if (heartbeat) clearInterval(heartbeat)
      heartbeat = undefined
    },
  }
}

/**
 * Each message of `from` sent on to `to` as it came; `from` paused while `to` has more than
 * `highWaterMark` bytes waiting, and resumed as soon as they are sent.
 */
function pipe(from: WebSocket, to: WebSocket, highWaterMark: number, onMessage: () => void) {
  let paused = false
  const sent = () => {
    if (paused && to.bufferedAmount <= highWaterMark / 2) {
      paused = false
      from.resume()
    }
  }
  from.on('message', (data: RawData, isBinary: boolean) => {
    onMessage()
    if (to.readyState !== WebSocket.OPEN) return
    to.send(data, { binary: isBinary }, sent)
    if (!paused && to.bufferedAmount > highWaterMark) {
      paused = true
      from.pause()
    }
  })
}

/**
 * Closes `ws` as its partner closed (core/proxy/socket-close.ts): with the same code and reason;
 * without a code when none was given (1005); cut off when the partner's connection broke without
 * a close (1006), so the other end sees a broken connection too.
 */
function closeWith(ws: WebSocket, code: number, reason: Buffer) {
  if (ws.readyState === WebSocket.CLOSED || ws.readyState === WebSocket.CLOSING) return
  const close = partnerClose(code, reason.toString())
  if (close === 'broken') ws.terminate()
  else if (close.code === undefined) ws.close()
  else ws.close(close.code, reason)
}

/** The close code `ws` sent for one of its protocol errors (by its error code), if it is one. */
function protocolClose(code: string | undefined): number | undefined {
  if (!code?.startsWith('WS_ERR_')) return undefined
  if (code === 'WS_ERR_INVALID_UTF8') return 1007
  if (code === 'WS_ERR_TOO_MANY_BUFFERED_PARTS') return 1008
  if (code.startsWith('WS_ERR_UNSUPPORTED_')) return 1009
  return 1002
}
