/**
 * `GET /bff/events` (needs `X-CSRF: 1`): the session's events for the SPA, as Server-Sent Events.
 *   event: session_ended     data: {"reason":"logout"}      then the stream ends
 *   event: session_expiring  data: {"expiresAt":1767225600} shortly before the absolute lifetime
 *   : keep-alive                                            a comment every 25 s
 * A stream is a live connection of its session (session/live.ts): it counts against the limits
 * per session and per instance (429 `too_many_connections` past them) and ends when the session
 * does, on whichever instance it ended. `EventSource` cannot send `X-CSRF`, so pages read it with
 * `fetch` (public/bff-client.js does). A stream that ends without `session_ended` (the server
 * going down, an idle deadline this instance cannot confirm) asks the client to come back: its
 * cookie then says whether the session is still there.
 */
import { Hono } from 'hono'
import { BffError } from '../errors.ts'
import type { BffEnv } from '../hono-env.ts'
import { csrfGuard } from '../policy/csrf.ts'
import type { BffServices } from '../services.ts'
import type { LiveLease } from '../session/live.ts'

/** Comments this often keep proxies and load balancers (often idle-cut at 30–60 s) from closing it. */
export const HEARTBEAT_MS = 25_000

const encoder = new TextEncoder()

/** One SSE event: a name and a JSON object, which holds no line break. */
function event(name: string, data: object): Uint8Array {
  return encoder.encode(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`)
}

export function eventsRoute(s: BffServices) {
  return new Hono<BffEnv>().get('/bff/events', csrfGuard(s.audit), async (c) => {
    const session = await s.sessions.load(c)
    if (!session) {
      // A page coming back after its stream ended learns why: its session expired, or there is none.
      if (c.get('sessionExpired')) {
        throw new BffError(401, 'session_expired', 'The session has expired; log in again.')
      }
      throw new BffError(401, 'unauthenticated', 'Not logged in.')
    }

    // Filled in by the stream's start, which runs at once, before any callback below can fire.
    let send = (_chunk: Uint8Array, _always?: boolean) => {}
    let finish = () => {}
    const opened = s.live.open(
      session,
      (reason) => {
        send(event('session_ended', { reason }), true)
        finish()
      },
      {
        onExpiring: (expiresAt) => send(event('session_expiring', { expiresAt }), true),
        // Closed without an event: the client comes back, and its cookie decides.
        onRecheck: () => finish(),
      }
    )
    if ('refused' in opened) {
      throw new BffError(
        429,
        'too_many_connections',
        opened.refused === 'session_limit'
          ? 'This session has too many live connections open; close some.'
          : 'The server holds too many live connections; try again later.'
      )
    }
    const lease: LiveLease = opened

    let heartbeat: ReturnType<typeof setInterval> | undefined
    let done = false
    const stop = () => {
      done = true
      if (heartbeat !== undefined) clearInterval(heartbeat)
      lease.release()
    }
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        send = (chunk, always = false) => {
          if (done) return
          // A client that stopped reading gets no more comments queued; events still go.
          if (!always && (controller.desiredSize ?? 1) <= 0) return
          try {
            controller.enqueue(chunk)
          } catch {
            stop()
          }
        }
        finish = () => {
          if (done) return
          stop()
          try {
            controller.close()
          } catch {
            // Already closed by the client going away.
          }
        }
        // A first line, so the answer's head and a byte reach the page at once.
        send(encoder.encode(': connected\n\n'), true)
        heartbeat = setInterval(() => send(encoder.encode(': keep-alive\n\n')), HEARTBEAT_MS)
      },
      // The browser went away (a closed tab, an aborted fetch): its place is free again.
      cancel: stop,
    })
    // Where the runtime says so sooner (an aborted request's signal), sooner.
    c.req.raw.signal?.addEventListener('abort', () => finish(), { once: true })
    return new Response(body, {
      status: 200,
      headers: {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        // nginx buffers proxied answers unless told not to; an event must not wait in it.
        'X-Accel-Buffering': 'no',
      },
    })
  })
}
