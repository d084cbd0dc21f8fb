/**
 * An in-process copy of the sessions this instance read from Redis, kept honest by Redis itself:
 * server-assisted client-side caching (`CLIENT TRACKING ... BCAST PREFIX`). Redis tells every
 * instance, on a connection of its own, about every change to a session key (write, delete,
 * expiry, flush) by anyone; the cached copy is dropped when the message arrives. Without it each
 * proxied call waits for a Redis round trip (and Redis's CPU) before it can start.
 *
 * When this copy may answer:
 * - only while tracking is on for the current invalidation connection: whenever that connection
 *   closes, everything is forgotten and reads go to Redis until tracking is back;
 * - only while Redis answered a heartbeat within `TRUST_MS`: a Redis that hangs (or a partition
 *   that drops packets without resets, so no change could reach us) is noticed within that time,
 *   after which reads go to Redis and fail closed like any other;
 * - never with a value read while an invalidation arrived: a read's answer and an invalidation
 *   travel on different connections, so the answer to a read sent before a change can arrive after
 *   the message about that change; such an answer is used once but not kept.
 * A change made by another instance is seen here once its message arrives (on loopback, well
 * under a millisecond; the same order as a read that was already under way when it happened).
 * Changes this instance makes are seen at once: the store evicts before and after every write.
 *
 * Needs Redis 6 or later; where tracking cannot be turned on (an older Redis, a proxy, a
 * disabled CLIENT command) the cache stays off and every read goes to Redis, as without it.
 */
import type { Redis } from 'ioredis'
import type { Logger } from '../../core/observe/log.ts'
import { copyValue } from '../../core/session/copy.ts'
import type { Session } from '../../core/session/types.ts'
import { oldestFirst } from '../../core/oldest-first.ts'

/** How long the cache is trusted after Redis last answered on the invalidation connection. */
export const TRUST_MS = 1000
export const HEARTBEAT_MS = 250
/** Where Redis sends invalidations under RESP2 (CLIENT TRACKING ... REDIRECT). */
export const INVALIDATIONS = '__redis__:invalidate'
/** Invalidated keys remembered for the reads under way; past it, those reads are all voided. */
const MAX_INVALIDATED = 4096

export interface RedisSessionCache {
  /** A copy of the cached session under this full key (client prefix included), if trusted. */
  get(key: string): Session | undefined
  /** Taken before a read from Redis, handed to `keep` with its answer. */
  ticket(): number
  /** Keeps a copy of what a read answered, unless anything was invalidated since `ticket`. */
  keep(key: string, session: Session, ticket: number): void
  /** Forgets one key, or everything, at once (this instance's own writes and deletions). */
  evict(key?: string): void
  /** Whether reads are answered from memory now (for tests and health output). */
  readonly active: boolean
  /** The prefix of the keys Redis reports changes of. */
  readonly keyPrefix: string
  close(): Promise<void>
}

export interface RedisSessionCacheOptions {
  /** The full prefix of the keys to track, the client's keyPrefix included, e.g. `bff:session:`. */
  keyPrefix: string
  /** Most sessions kept; past it the oldest entry goes. @default 10_000 */
  maxEntries?: number
  log?: Logger
  /** Epoch milliseconds. */
  now?: () => number
}

/**
 * `subscriber` is a connection of the cache's own (e.g. `redis.duplicate()`), which it owns and
 * closes: once subscribed, a connection can carry nothing else.
 */
export function redisSessionCache(
  subscriber: Redis,
  options: RedisSessionCacheOptions
): RedisSessionCache {
  const now = options.now ?? Date.now
  let tracking = false
  let lastAnswer = 0
  let heartbeatPending = false
  let closed = false
  let warned = false
  const trusted = () => tracking && now() - lastAnswer < TRUST_MS
  const entries = sessionEntries({
    keyPrefix: options.keyPrefix,
    maxEntries: options.maxEntries,
    trusted,
    async close() {
      closed = true
      clearInterval(heartbeat)
      lose()
      await subscriber.quit().catch(() => subscriber.disconnect())
    },
  })

  function lose() {
    tracking = false
    entries.forget()
  }

  async function track() {
    lose()
    try {
      // Tracking is redirected to this very connection, so it ends when the connection does.
      const id = await subscriber.client('ID')
      await subscriber.call(
        'CLIENT',
        'TRACKING',
        'ON',
        'REDIRECT',
        String(id),
        'BCAST',
        'PREFIX',
        options.keyPrefix
      )
      await subscriber.subscribe(INVALIDATIONS)
      if (closed || subscriber.status !== 'ready') return
      entries.forget() // anything read before tracking began may have changed unseen
      lastAnswer = now()
      tracking = true
    } catch (err) {
      if (!warned && !closed && subscriber.status === 'ready') {
        warned = true
        options.log?.('warn', 'redis.tracking_unavailable', {
          reason: err instanceof Error ? err.name : typeof err,
        })
      }
    }
  }

  subscriber.on('error', () => {}) // the main client reports Redis's health; here it only means "off"
  subscriber.on('ready', () => void track())
  subscriber.on('close', lose)
  subscriber.on('messageBuffer', (channel: Buffer, message: unknown) => {
    if (channel.toString() !== INVALIDATIONS) return
    lastAnswer = now()
    entries.invalidate(message)
  })
  if (subscriber.status === 'ready') void track()
  // A duplicate of a client made with lazyConnect waits for a first command that never comes.
  else if (subscriber.status === 'wait') subscriber.connect().catch(() => {})

  const heartbeat = setInterval(() => {
    if (!tracking || heartbeatPending) return
    heartbeatPending = true
    subscriber
      .ping()
      .then(() => (lastAnswer = now()))
      .catch(() => {})
      .finally(() => (heartbeatPending = false))
  }, HEARTBEAT_MS)
  heartbeat.unref?.()

  return entries.cache
}

/**
 * The cached sessions and their epoch, shared by this cache and the Cluster's
 * (redis-cluster-cache.ts): `trusted(key)` says whether a copy of `key` may be answered or kept.
 */
export function sessionEntries(parts: {
  keyPrefix: string
  maxEntries?: number
  trusted: (key?: string) => boolean
  close: () => Promise<void>
}): { cache: RedisSessionCache; forget(): void; invalidate(message: unknown): void } {
  const maxEntries = parts.maxEntries ?? 10_000
  const entries = new Map<string, Session>()
  const oldestEntry = oldestFirst(entries)
  // Raised by every invalidation: a read's ticket is the epoch it began at. A read is kept only
  // if its own key was not invalidated since (`invalidated`) and nothing voided every ticket
  // since (`floor`: a loss of tracking, a flush). One epoch for all keys voided every read under
  // way whenever any session was written: under steady load (slides, refreshes) almost nothing
  // was kept, and the cache of a soak at 100 000 sessions held some 750 of its 10 000 entries.
  let epoch = 0
  let floor = 0
  const invalidated = new Map<string, number>()
  const forget = () => {
    floor = ++epoch
    invalidated.clear()
    entries.clear()
  }
  const drop = (key: string) => {
    entries.delete(key)
    invalidated.set(key, ++epoch)
    // Bounded: past it, every read under way is voided once instead.
    if (invalidated.size > MAX_INVALIDATED) {
      floor = epoch
      invalidated.clear()
    }
  }
  return {
    forget,
    invalidate(message) {
      // An array of keys; null when Redis flushed a database, which touches every key at once.
      if (!Array.isArray(message)) return forget()
      for (const key of message) drop(String(key))
    },
    cache: {
      get(key) {
        if (!parts.trusted(key)) return undefined
        const session = entries.get(key)
        return session && copyValue(session)
      },
      ticket: () => epoch,
      keep(key, session, ticket) {
        if (ticket < floor || (invalidated.get(key) ?? 0) > ticket || !parts.trusted(key)) return
        if (entries.size >= maxEntries) entries.delete(oldestEntry()![0])
        entries.set(key, copyValue(session))
      },
      evict(key) {
        if (key === undefined) return forget()
        drop(key)
      },
      get active() {
        return parts.trusted()
      },
      keyPrefix: parts.keyPrefix,
      close: parts.close,
    },
  }
}
