/**
 * Live connections of sessions (proxied WebSockets, `/bff/events` streams) and the news that ends
 * them. A session can end on any instance (a logout here, a back-channel logout there, an admin
 * revocation, a refused refresh, expiry), while its sockets are held by whichever instance took the
 * upgrade: a `SessionEndBus` carries each end to every instance, and `LiveSessions` closes the
 * connections here that the end concerns.
 *
 * Ends are told the way stores are asked to end sessions (one id, or every session of an IdP `sid`
 * or subject), so the `cookie` store, which cannot list sessions, is served as well as the others.
 *
 * Expiry needs no message: nobody ends an expired session, it just runs out. So the registry
 * watches the deadlines of the sessions it holds connections of, on one timer per instance that
 * compares them with the app's clock every `tickMs` (a jump of the clock, as tests make, is seen at
 * the next tick). At the absolute lifetime the connections end. At the idle deadline the session
 * may have slid meanwhile (a request on this or another instance): the store is asked again
 * (`recheck`), and the deadline moves with it, or the connections end. A store that cannot tell
 * (the `cookie` store across instances, whose sessions only the browser holds) answers undefined:
 * each connection is then asked to come back with its cookie (`onRecheck`), which decides.
 */
import type { Session } from './types.ts'

/** Why a session ended, as `/bff/events` and a socket's close reason tell it. */
export type SessionEndReason =
  'logout' | 'backchannel_logout' | 'admin_revoke' | 'session_expired' | 'refresh_failed'

/** Every reason, for checking an end that came over a wire. */
export const SESSION_END_REASONS: readonly SessionEndReason[] = [
  'logout',
  'backchannel_logout',
  'admin_revoke',
  'session_expired',
  'refresh_failed',
]

/**
 * Which sessions ended: one by id, or every one of an IdP `sid` or subject (of `idp` when given).
 * `replaced`: a new login in the same browser took its place, so the browser is still logged in:
 * connections that can come back with the cookie (`onRecheck`) do, the others end.
 */
export type SessionEnd = { reason: SessionEndReason; idp?: string; replaced?: boolean } & (
  { id: string } | { sid: string } | { sub: string }
)

/** Carries session ends to every instance (this one included). */
export interface SessionEndBus {
  publish(end: SessionEnd): Promise<void>
  /** Hears every end published by any instance; returns how to stop. */
  subscribe(listener: (end: SessionEnd) => void): () => void
  /**
   * For a runtime where an instance cannot hear every end (Workers: isolates cannot subscribe to
   * a bus): starts hearing, for one live connection, the ends that can concern this session, as
   * `subscribe`'s listeners; returns how to stop. The registry calls it per connection, from the
   * connection's own request, and then also keeps each connection's deadlines on a timer of that
   * connection's own (on Workers a timer cannot outlive its request, nor serve another's).
   */
  watch?(session: Session): () => void
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

/**
 * An end as it came over a wire (Redis, a Durable Object), checked field by field: anything else is
 * null, so a stray or malformed message can neither throw nor end the wrong sessions.
 */
export function sessionEndOf(value: unknown): SessionEnd | null {
  if (typeof value !== 'object' || value === null) return null
  const v = value as Record<string, unknown>
  if (!SESSION_END_REASONS.includes(v.reason as SessionEndReason)) return null
  if (v.idp !== undefined && typeof v.idp !== 'string') return null
  if (v.replaced !== undefined && typeof v.replaced !== 'boolean') return null
  const base = {
    reason: v.reason as SessionEndReason,
    ...(v.idp ? { idp: v.idp as string } : {}),
    ...(v.replaced ? { replaced: true } : {}),
  }
  const keys = (['id', 'sid', 'sub'] as const).filter((key) => v[key] !== undefined)
  if (keys.length !== 1) return null
  const key = keys[0]!
  const named = v[key]
  if (typeof named !== 'string' || named === '') return null
  return { ...base, [key]: named } as SessionEnd
}

/** An open live connection: `release` when it closes on its own. */
export interface LiveLease {
  release(): void
}

/** Why a connection may not open: its session or this instance holds as many as allowed. */
export type LiveRefusal = { refused: 'session_limit' | 'instance_limit' }

/** What a connection wants to hear besides its end. */
export interface LiveOpenOptions {
  /**
   * Told once, `warnSeconds` before the session's absolute lifetime ends, with that moment (epoch
   * seconds): the page can say so, or offer a new login, before its calls start failing.
   */
  onExpiring?: (expiresAt: number) => void
  /**
   * The session's idle deadline passed and the store cannot tell whether it slid elsewhere (the
   * `cookie` store across instances): the connection should close and its client reconnect with
   * its cookie, which is then checked (an expired one answers 401 `session_expired`). The lease is
   * released. Without it, the connection ends with `session_expired`.
   */
  onRecheck?: () => void
}

export interface LiveSessions {
  /**
   * Registers a live connection of `session`; `onEnd` is called once when the session ends (the
   * lease is then released). Answers a refusal when a limit is reached.
   */
  open(
    session: Session,
    onEnd: (reason: SessionEndReason) => void,
    options?: LiveOpenOptions
  ): LiveLease | LiveRefusal
  /**
   * A newer copy of a session was seen here (its idle expiry slid, its tokens changed): the
   * deadlines of its connections follow it. Cheap when the session has none.
   */
  touch(session: Session): void
  /** Open connections on this instance. */
  readonly size: number
  /**
   * This instance is going away: connections that can come back (`onRecheck`) are asked to, to
   * reconnect to another instance; the others are left to the server's own shutdown. The timer
   * stops.
   */
  drain(): void
  /** Stops the timer and ends nothing. */
  close(): void
}

/** How an expiry was found: the absolute lifetime, or the idle timeout. */
export type ExpiryKind = 'absolute_lifetime' | 'idle_timeout'

export interface LiveSessionsOptions {
  bus: SessionEndBus
  /** Connections one session may hold on this instance. */
  maxPerSession: number
  /** Connections this instance holds at most. */
  maxPerInstance: number
  /** The app's clock, epoch milliseconds. @default Date.now */
  now?: () => number
  /** How often deadlines are compared with the clock, milliseconds. @default 500 */
  tickMs?: number
  /** How long before the absolute lifetime `onExpiring` is told, seconds. @default 60 */
  warnSeconds?: number
  /**
   * At a session's idle deadline: the session as the store has it now (alive, its deadline
   * maybe moved), null when it is gone (expired), undefined when the store cannot tell. A throw
   * (the store down) keeps the connections and asks again `retryMs` later. Without it, the idle
   * deadline this instance knows is final.
   */
  recheck?: (session: Session) => Promise<Session | null | undefined>
  /** After a failed `recheck`, milliseconds to the next. @default 5000 */
  retryMs?: number
  /**
   * Told when this instance found a session of its connections expired, to write it down and tell
   * the other instances. Its connections end once it is done (at most 2 s later): on Workers a
   * request's work stops with its answer, and the answer is the connection.
   */
  onExpired?: (session: Session, kind: ExpiryKind) => Promise<void> | void
}

interface Connection {
  session: Session
  onEnd: (reason: SessionEndReason) => void
  options: LiveOpenOptions
  warned: boolean
  /** With a bus that `watch`es: stops this connection's watch and its own timer. */
  stop?: () => void
  /** With a bus that `watch`es: runs what the connection is told in its own request (`homeOf`). */
  home?: (run: () => void) => void
}

/** The connections of one session on this instance, and what is known of its deadlines. */
interface Group {
  connections: Set<Connection>
  /** The newest copy of the session seen here. */
  session: Session
  /** A `recheck` is under way, or not before this moment (epoch ms) after a failed one. */
  checking: boolean
  retryAt: number
}

export function createLiveSessions(options: LiveSessionsOptions): LiveSessions {
  const now = options.now ?? Date.now
  const tickMs = options.tickMs ?? 500
  const warnMs = (options.warnSeconds ?? 60) * 1000
  const retryMs = options.retryMs ?? 5000
  const groups = new Map<string, Group>()
  let size = 0
  let timer: ReturnType<typeof setInterval> | undefined

  function startTimer() {
    if (timer !== undefined) return
    timer = setInterval(tick, tickMs)
    // The timer serves open connections; it must not keep a Node process alive on its own.
    ;(timer as { unref?: () => void }).unref?.()
  }

  function stopTimer() {
    if (timer === undefined) return
    clearInterval(timer)
    timer = undefined
  }

  // Connections of their own requests (Workers) each watch and time themselves.
  const perConnection = options.bus.watch !== undefined

  const remove = (connection: Connection): boolean => {
    const group = groups.get(connection.session.id)
    if (!group?.connections.delete(connection)) return false
    if (group.connections.size === 0) groups.delete(connection.session.id)
    size--
    if (size === 0) stopTimer()
    connection.stop?.()
    return true
  }

  /**
   * Ends every connection of one session here, each told once. With `comeBack`, a connection that
   * can come back with its cookie (`onRecheck`) is asked to instead.
   */
  function endGroup(
    id: string,
    reason: SessionEndReason,
    which?: (c: Connection) => boolean,
    comeBack = false
  ) {
    for (const connection of [...(groups.get(id)?.connections ?? [])]) {
      if (which && !which(connection)) continue
      if (!remove(connection)) continue
      const { onRecheck } = connection.options
      tellTo(connection, () => (comeBack && onRecheck ? onRecheck() : connection.onEnd(reason)))
    }
  }

  options.bus.subscribe((end) => {
    const ids = 'id' in end ? [end.id] : [...groups.keys()]
    for (const id of ids) {
      endGroup(id, end.reason, (c) => endsSession(end, c.session), end.replaced === true)
    }
  })

  function tick() {
    const t = now()
    for (const [id, group] of [...groups]) check(id, group, t)
  }

  /** Compares one session's deadlines with the clock. */
  function check(id: string, group: Group, t: number) {
    const { session } = group
    const absolute = session.absoluteExpiresAt
    if (absolute !== undefined && t >= absolute * 1000) {
      expire(id, group, 'absolute_lifetime')
      return
    }
    if (absolute !== undefined && t >= absolute * 1000 - warnMs) {
      for (const connection of group.connections) {
        if (connection.warned || !connection.options.onExpiring) continue
        connection.warned = true
        tellTo(connection, () => connection.options.onExpiring!(absolute))
      }
    }
    if (t >= session.expiresAt * 1000 && !group.checking && t >= group.retryAt) {
      void idle(id, group)
    }
  }

  /** The idle deadline passed: did the session slide elsewhere, end, or can nobody here tell? */
  async function idle(id: string, group: Group) {
    if (!options.recheck) return expire(id, group, 'idle_timeout')
    group.checking = true
    let current: Session | null | undefined
    try {
      current = await options.recheck(group.session)
    } catch {
      group.retryAt = now() + retryMs
      return
    } finally {
      group.checking = false
    }
    if (groups.get(id) !== group) return // ended meanwhile
    if (current === undefined) {
      // Nobody here can tell: a connection that can come back with its cookie does; the others
      // end, on the newest deadline this instance knows.
      endGroup(id, 'session_expired', undefined, true)
      return
    }
    if (current && current.expiresAt * 1000 > now()) {
      touch(current)
      return
    }
    expire(id, group, 'idle_timeout')
  }

  /** The session expired: written down and told (`onExpired`), then its connections end. */
  function expire(id: string, group: Group, kind: ExpiryKind) {
    if (group.checking && kind === 'absolute_lifetime') return
    group.checking = true // no second report while this one is under way
    let report: Promise<void> | void
    try {
      report = options.onExpired?.(group.session, kind)
    } catch {
      report = undefined
    }
    let timer: ReturnType<typeof setTimeout> | undefined
    const capped = new Promise<void>((resolve) => (timer = setTimeout(resolve, 2000)))
    void Promise.race([Promise.resolve(report).catch(() => {}), capped]).then(() => {
      clearTimeout(timer)
      endGroup(id, 'session_expired')
    })
  }

  function touch(session: Session) {
    const group = groups.get(session.id)
    if (!group) return
    const known = group.session
    // Expiry only slides forward, and a newer generation carries the newest tokens' deadline.
    if (session.generation > known.generation || session.expiresAt > known.expiresAt) {
      group.session = {
        ...session,
        expiresAt: Math.max(session.expiresAt, known.expiresAt),
      }
    }
  }

  return {
    open(session, onEnd, openOptions = {}) {
      const group = groups.get(session.id)
      if ((group?.connections.size ?? 0) >= options.maxPerSession) {
        return { refused: 'session_limit' }
      }
      if (size >= options.maxPerInstance) return { refused: 'instance_limit' }
      const connection: Connection = { session, onEnd, options: openOptions, warned: false }
      if (group) {
        group.connections.add(connection)
        touch(session)
      } else {
        groups.set(session.id, {
          connections: new Set([connection]),
          session,
          checking: false,
          retryAt: 0,
        })
      }
      size++
      if (perConnection) {
        const unwatch = options.bus.watch!(session)
        const timer = setInterval(() => {
          const current = groups.get(session.id)
          if (current) check(session.id, current, now())
        }, tickMs)
        const home = homeOf()
        connection.home = home
        connection.stop = () =>
          home(() => {
            clearInterval(timer)
            unwatch()
          })
      } else {
        startTimer()
      }
      return { release: () => void remove(connection) }
    },
    touch,
    get size() {
      return size
    },
    drain() {
      stopTimer()
      for (const group of [...groups.values()]) {
        for (const connection of [...group.connections]) {
          const { onRecheck } = connection.options
          if (onRecheck && remove(connection)) tellTo(connection, onRecheck)
        }
      }
      stopTimer()
    },
    close: stopTimer,
  }
}

/** Tells `connection` something, in its own request when it has one (`homeOf`). */
function tellTo(connection: Connection, listener: () => void) {
  if (connection.home) connection.home(listener)
  else tell(listener)
}

/**
 * Runs what a connection is told in the request that opened it. On Workers an end is often told
 * from another request's handler (a logout this isolate serves, another connection's listener or
 * timer), which cannot touch this request's sockets or timers ("Cannot perform I/O on behalf of a
 * different request"); workerd runs a promise's continuations in the request that made the
 * promise, so one made at `open` carries them back. Calls made together run together.
 */
function homeOf(): (run: () => void) => void {
  const queued: Array<() => void> = []
  let send = () => {}
  const arm = () =>
    void new Promise<void>((resolve) => (send = resolve)).then(() => {
      arm() // the next one is made here, at home too
      for (const run of queued.splice(0)) tell(run)
    })
  arm()
  return (run) => {
    queued.push(run)
    send()
  }
}

/** Runs a listener; one that throws must not keep the others from being told. */
function tell(listener: () => void) {
  try {
    listener()
  } catch {
    // The connection's own business (a socket already closed): nothing to undo here.
  }
}
