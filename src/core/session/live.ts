/**
 * Live connections of sessions (proxied WebSockets, `/bff/events` streams) and the news that ends
 * them. A session can end on any instance (a logout here, a back-channel logout there, an admin
 * revocation, a refused refresh, expiry), while its sockets are held by whichever instance took the
 * upgrade: a `SessionEndBus` carries each end to every instance, and `LiveSessions` closes the
 * connections here that the end concerns.
 *
 * Ends are told the way stores are asked to end sessions (one id, or every session of an IdP `sid`
 * or subject), so the `cookie` store, which cannot list sessions, is served as well as the others.
 */
import type { Session } from './types.ts'

/** Why a session ended, as `/bff/events` and a socket's close reason tell it. */
export type SessionEndReason =
  'logout' | 'backchannel_logout' | 'admin_revoke' | 'session_expired' | 'refresh_failed'

/** Which sessions ended: one by id, or every one of an IdP `sid` or subject (of `idp` when given). */
export type SessionEnd = { reason: SessionEndReason; idp?: string } & (
  { id: string } | { sid: string } | { sub: string }
)

/** Carries session ends to every instance (this one included). */
export interface SessionEndBus {
  publish(end: SessionEnd): Promise<void>
  /** Hears every end published by any instance; returns how to stop. */
  subscribe(listener: (end: SessionEnd) => void): () => void
}

/** Whether an end concerns this session. Without a recorded IdP, a session matches any (as stores do). */
export function endsSession(end: SessionEnd, session: Session): boolean {
  if ('id' in end) return end.id === session.id
  const sameIdp = end.idp === undefined || session.idp === undefined || end.idp === session.idp
  if ('sid' in end) return sameIdp && end.sid === session.sid
  return sameIdp && end.sub === session.sub
}

/** The bus of one process: enough for the `memory` store, or a single instance. */
export function inProcessBus(): SessionEndBus {
  const listeners = new Set<(end: SessionEnd) => void>()
  return {
    async publish(end) {
      for (const listener of [...listeners]) listener(end)
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
  }
}

/** An open live connection: `release` when it closes on its own. */
export interface LiveLease {
  release(): void
}

/** Why a connection may not open: its session or this instance holds as many as allowed. */
export type LiveRefusal = { refused: 'session_limit' | 'instance_limit' }

export interface LiveSessions {
  /**
   * Registers a live connection of `session`; `onEnd` is called once when the session ends (the
   * lease is then released). Answers a refusal when a limit is reached.
   */
  open(session: Session, onEnd: (reason: SessionEndReason) => void): LiveLease | LiveRefusal
  /** Open connections on this instance. */
  readonly size: number
}

export interface LiveSessionsOptions {
  bus: SessionEndBus
  /** Connections one session may hold on this instance. */
  maxPerSession: number
  /** Connections this instance holds at most. */
  maxPerInstance: number
}

interface Connection {
  session: Session
  onEnd: (reason: SessionEndReason) => void
}

export function createLiveSessions(options: LiveSessionsOptions): LiveSessions {
  const bySession = new Map<string, Set<Connection>>()
  let size = 0

  const remove = (connection: Connection): boolean => {
    const set = bySession.get(connection.session.id)
    if (!set?.delete(connection)) return false
    if (set.size === 0) bySession.delete(connection.session.id)
    size--
    return true
  }

  options.bus.subscribe((end) => {
    const ids = 'id' in end ? [end.id] : [...bySession.keys()]
    for (const id of ids) {
      for (const connection of [...(bySession.get(id) ?? [])]) {
        if (!endsSession(end, connection.session) || !remove(connection)) continue
        connection.onEnd(end.reason)
      }
    }
  })

  return {
    open(session, onEnd) {
      const set = bySession.get(session.id) ?? new Set<Connection>()
      if (set.size >= options.maxPerSession) return { refused: 'session_limit' }
      if (size >= options.maxPerInstance) return { refused: 'instance_limit' }
      const connection: Connection = { session, onEnd }
      set.add(connection)
      bySession.set(session.id, set)
      size++
      return { release: () => void remove(connection) }
    },
    get size() {
      return size
    },
  }
}
