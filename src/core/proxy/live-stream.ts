/**
 * A proxied event stream (`text/event-stream`) lives no longer than its session: it is one of the
 * session's live connections (`services.live`, as a WebSocket is), and ends when the session ends
 * on any instance (logout, back-channel, admin, expiry, a refused refresh). The browser's stream
 * then closes cleanly and the upstream's is cancelled; an `EventSource` that reconnects meets 401.
 * Other answers, however long, end when the upstream ends them.
 */
import type { Context } from 'hono'
import type { BffServices } from '../services.ts'
import type { Session } from '../session/types.ts'

/**
 * Whether an upstream answer is a Server-Sent Events stream. The type is read first: on Node,
 * reading `body` turns a small answer held as one buffer into a stream, and node-server then
 * writes it in pieces instead of with its head (that read on every answer cost ~60 µs a call).
 */
export function isEventStream(response: Response): boolean {
  const type = response.headers.get('content-type')
  return /^\s*text\/event-stream\s*(;|$)/i.test(type ?? '') && response.body !== null
}

/**
 * `response` with its body ended when `session` ends, or 429 `too_many_connections` (the
 * upstream's answer cancelled) when the session or this instance holds as many live connections
 * as it may.
 */
export async function endingWithSession(
  s: BffServices,
  c: Context,
  response: Response,
  session: Session
): Promise<Response> {
  const reader = response.body!.getReader()
  let stream: ReadableStreamDefaultController<Uint8Array> | undefined
  let ended = false
  const end = () => {
    if (ended) return
    ended = true
    reader.cancel().catch(() => {})
    try {
      stream?.close()
    } catch {
      // Already closed or errored: nothing left to end.
    }
  }
  const lease = s.live.open(session, end)
  if ('refused' in lease) {
    await reader.cancel().catch(() => {})
    return c.json(
      {
        error: 'too_many_connections',
        message: 'This session has as many open streams as it may.',
      },
      429,
      { 'Cache-Control': 'no-store' }
    )
  }
  const body = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        stream = controller
      },
      // One chunk per pull, as the reader asks: the upstream is read no faster than the browser.
      async pull(controller) {
        try {
          const next = await reader.read()
          if (ended) return
          if (next.done) {
            ended = true
            lease.release()
            controller.close()
          } else controller.enqueue(next.value)
        } catch (err) {
          ended = true
          lease.release()
          controller.error(err)
        }
      },
      cancel(reason) {
        ended = true
        lease.release()
        return reader.cancel(reason)
      },
    },
    { highWaterMark: 0 }
  )
  return new Response(body, {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  })
}
