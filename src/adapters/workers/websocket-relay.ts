/**
 * The frames of an open WebSocket pair on Workers (the browser's, the server end of a
 * `WebSocketPair`, and the upstream's, from a `fetch` upgrade), relayed both ways: text stays
 * text and binary stays binary, each message as it came; close codes and reasons pass through
 * (core/proxy/socket-close.ts); the session's end (`SocketLife.onClose`) closes both sides.
 *
 * No backpressure: the Workers WebSocket API has no `bufferedAmount` and no way to stop reading a
 * socket, so a message is handed on as soon as it arrives and waits in the runtime, however
 * slowly the other side reads. Nothing tells how much waits, so nothing here can bound it; only
 * a single message's size is (`maxMessageBytes`, 1009). docs/workers.md says what follows.
 */
import { TOO_BIG_CLOSE, brokenClose, partnerClose } from '../../core/proxy/socket-close.ts'
import type { SocketLife } from '../../core/proxy/websocket.ts'

/** What the relay uses of a Workers WebSocket (the DOM's type lacks `accept`). */
export interface WorkersSocket {
  accept(options?: { allowHalfOpen?: boolean }): void
  send(data: string | ArrayBuffer | ArrayBufferView): void
  close(code?: number, reason?: string): void
  readyState: number
  binaryType: 'blob' | 'arraybuffer'
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void
  addEventListener(
    type: 'error',
    listener: (event: { message?: string; error?: unknown }) => void
  ): void
}

const OPEN = 1

/**
 * Takes a socket into the relay's hands: accepted half-open (a close from the peer is answered by
 * the relay, once it has passed it on, on every compatibility date: from 2026-04-07 the runtime
 * would otherwise answer it itself) and with binary messages as ArrayBuffers (from 2026-03-17 they
 * would be Blobs, which can only be read asynchronously, out of order with the text around them).
 */
export function acceptForRelay(socket: WorkersSocket): void {
  socket.accept({ allowHalfOpen: true })
  socket.binaryType = 'arraybuffer'
}

/** The isolate's relayed pairs. */
export interface Relays {
  /**
   * Relays `browser` and `upstream` (both accepted) until either closes; `life` is released then.
   * Answers how to close both at once (and release `life`), e.g. when the 101 never went out.
   */
  relay(
    browser: WorkersSocket,
    upstream: WorkersSocket,
    life: SocketLife
  ): (code: number, reason: string) => void
  readonly size: number
}

export function createRelays(options: { maxMessageBytes: number }): Relays {
  let size = 0
  return {
    relay(browser, upstream, life) {
      size++
      let finished = false
      /** Ends the pair once: `to` closed as `from` closed (or as the session's end says). */
      const finish = () => {
        if (finished) return false
        finished = true
        size--
        life.release()
        return true
      }
      const closeBoth = (code: number, reason: string) => {
        if (!finish()) return
        closeSocket(browser, code, reason)
        closeSocket(upstream, code, reason)
      }
      for (const [from, to] of [
        [browser, upstream],
        [upstream, browser],
      ] as const) {
        from.addEventListener('message', ({ data }) => {
          if (finished) return
          if (byteLength(data, options.maxMessageBytes) > options.maxMessageBytes) {
            closeBoth(TOO_BIG_CLOSE, 'message_too_large')
            return
          }
          if (to.readyState === OPEN) to.send(data as string | ArrayBuffer)
        })
        from.addEventListener('close', ({ code, reason }) => {
          // Half-open: this side's close is answered here, with its own code.
          closeSocket(from, code, reason)
          if (!finish()) return
          const close = partnerClose(code, reason)
          if (close === 'broken') closeSocket(to, brokenClose.code, brokenClose.reason)
          else closeSocket(to, close.code, close.code === undefined ? undefined : reason)
        })
        // A side that broke the protocol (a message over the runtime's own limit, say) was sent
        // that close code by the runtime, and has no close event of its own: the other side gets
        // the code. Any other error is a connection lost.
        from.addEventListener('error', (event) => {
          if (!finish()) return
          const code = protocolClose(event)
          closeSocket(to, code ?? brokenClose.code, code ? '' : brokenClose.reason)
        })
      }
      // The session ended (or its token can no longer be renewed): both sides are told why, from
      // this request (core/session/live.ts brings an end told elsewhere back here).
      life.onClose(closeBoth)
      return closeBoth
    },
    get size() {
      return size
    },
  }
}

/** Closes `socket` with `code` (none: a close frame without one), if it is not closed already. */
function closeSocket(socket: WorkersSocket, code?: number, reason?: string): void {
  try {
    if (code === undefined || code === 1005) socket.close()
    else if (code === 1006) socket.close(brokenClose.code, brokenClose.reason)
    else socket.close(code, reason)
  } catch {
    // Closed already, or its connection is gone: nothing left to tell it.
  }
}

/**
 * A message's size in bytes, exactly when it is near `limit`: a string's UTF-8 length is at least
 * its length in UTF-16 units and at most three times that, so most strings need no encoding.
 */
function byteLength(data: unknown, limit: number): number {
  if (typeof data === 'string') {
    if (data.length > limit || data.length * 3 <= limit) return data.length
    return new TextEncoder().encode(data).byteLength
  }
  return (data as ArrayBuffer).byteLength
}

/** The close code the runtime sent for a protocol error: workerd names it in the message. */
function protocolClose(event: { message?: string; error?: unknown }): number | undefined {
  const text = event.message ?? String(event.error ?? '')
  const code = Number(/statusCode = (\d{4})\b/.exec(text)?.[1])
  return code >= 1000 && code < 5000 ? code : undefined
}
