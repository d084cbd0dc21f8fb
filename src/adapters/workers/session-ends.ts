/**
 * Session ends across Workers isolates. An isolate cannot subscribe to a bus, so the Durable
 * Objects are the meeting point: an isolate holding a live connection of a session listens, over a
 * WebSocket of that connection's own, to the three objects an end can be told to — the session's
 * object (ends by id), and the index objects of its `sid` and its `sub` (ends by IdP session or by
 * user). Whoever ends a session tells the one object the end names, which sends it to its
 * listeners. The objects hold the sockets with the WebSocket Hibernation API: an object with
 * nothing to do but listeners is evicted from memory and costs no duration; a message wakes it.
 *
 * Each connection's sockets belong to its own request, so an end reaches a stream from within the
 * request that serves it.
 */
import type { DurableObjectState } from '@cloudflare/workers-types/latest'
import { sessionEndOf, type SessionEnd, type SessionEndBus } from '../../core/session/live.ts'
import type { Session } from '../../core/session/types.ts'
import { indexObject, sessionObject, type SessionObjectEnv } from './bindings.ts'

/** The path an isolate asks an object for its WebSocket on; objects answer nothing else by fetch. */
export const LISTEN_PATH = '/bff-live/listen'

type Socket = {
  accept(): void
  send(data: string): void
  close(code?: number, reason?: string): void
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void
}

/** The object half: a WebSocket for a listening isolate, held hibernatable. */
export function acceptListener(
  ctx: DurableObjectState,
  request: { url: string; headers: { get(name: string): string | null } }
): Response {
  if (
    new URL(request.url).pathname !== LISTEN_PATH ||
    request.headers.get('upgrade') !== 'websocket'
  ) {
    return new Response(null, { status: 404 })
  }
  const Pair = (globalThis as unknown as { WebSocketPair: new () => [Socket, Socket] })
    .WebSocketPair
  const [client, server] = Object.values(new Pair()) as [Socket, Socket]
  ctx.acceptWebSocket(server as never)
  return new Response(null, { status: 101, webSocket: client } as ResponseInit)
}

/** The object half: tells every listener of this object an end. */
export function announceEnd(ctx: DurableObjectState, end: SessionEnd): void {
  const text = JSON.stringify(end)
  for (const socket of ctx.getWebSockets()) {
    try {
      socket.send(text)
    } catch {
      // A listener gone meanwhile: its isolate's connection has ended anyway.
    }
  }
}

/** The object half: completes a listener's close. */
export function closeListener(socket: unknown, code: number, reason: string): void {
  try {
    ;(socket as Socket).close(code === 1005 || code === 1006 ? 1000 : code, reason)
  } catch {
    // Already closed.
  }
}

/** The object an end is told to: by id the session's, by `sid` or `sub` that index's. */
function objectOf(env: SessionObjectEnv, end: SessionEnd) {
  if ('id' in end) return sessionObject(env, end.id)
  return 'sid' in end ? indexObject(env, 'sid', end.sid) : indexObject(env, 'sub', end.sub)
}

/**
 * The bus of the Workers entry: `publish` tells this isolate's listeners and the object the end
 * names; `watch` opens a connection's sockets to the session's three objects.
 */
export function durableObjectSessionEndBus(env: SessionObjectEnv): SessionEndBus {
  const listeners = new Set<(end: SessionEnd) => void>()
  const deliver = (end: SessionEnd) => {
    for (const listener of [...listeners]) {
      try {
        listener(end)
      } catch {
        // One listener's failure must not keep the others from hearing it.
      }
    }
  }
  return {
    async publish(end) {
      deliver(end)
      await objectOf(env, end).announce(end)
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    watch(session: Session) {
      let stopped = false
      const sockets: Socket[] = []
      const objects = [
        sessionObject(env, session.id),
        indexObject(env, 'sid', session.sid),
        indexObject(env, 'sub', session.sub),
      ]
      for (const object of objects) {
        object
          .fetch(`https://bff${LISTEN_PATH}`, { headers: { Upgrade: 'websocket' } })
          .then((response) => {
            const socket = (response as unknown as { webSocket?: Socket | null }).webSocket
            if (!socket) return
            socket.accept()
            if (stopped) return socket.close(1000)
            sockets.push(socket)
            socket.addEventListener('message', (event) => {
              let end: SessionEnd | null = null
              try {
                end = sessionEndOf(JSON.parse(String(event.data)))
              } catch {
                return
              }
              if (end) deliver(end)
            })
          })
          .catch(() => {
            // The object cannot be reached: this connection ends at its deadline instead.
          })
      }
      return () => {
        stopped = true
        for (const socket of sockets.splice(0)) {
          try {
            socket.close(1000)
          } catch {
            // Already closed.
          }
        }
      }
    },
  }
}
