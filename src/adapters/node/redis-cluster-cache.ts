/**
 * The in-process session cache (redis-cache.ts) on a Redis Cluster. Each primary reports changes
 * only to the keys it holds, so the cache keeps a tracker per primary: a connection subscribed to
 * invalidations and one that turned tracking on for the session keys (`CLIENT TRACKING ON
 * REDIRECT <subscriber> BCAST PREFIX`) and checks, every 250 ms, that its node still answers and
 * is still a primary (`ROLE`).
 *
 * A cached copy of a key may answer only while the tracker of the node that serves the key's slot
 * (by the client's slot map: where a read of it goes) is tracking and checked within `TRUST_MS`.
 * Every way a key's changes could escape the cache ends its trust:
 * - the node dies or a connection drops: its tracker ends and the whole cache is forgotten; keys
 *   of its slots are read from Redis until a tracker of the node serving them runs;
 * - a failover demotes the node while it stays up: its next `ROLE` says so (within 250 ms), the
 *   cache is forgotten and the slot map read again;
 * - a slot moves to another node: moving a key deletes it at the source, which reports it; a
 *   read redirected to a node without a running tracker is not kept;
 * - a tracker starts: everything is forgotten, as keys on its node may have changed unseen.
 * The window left: after a primary is demoted, another instance's change made on the new
 * primary before this one's next `ROLE` check (at most 250 ms) can be answered stale.
 */
import { Redis, type Cluster } from 'ioredis'
import type { Logger } from '../../core/observe/log.ts'
import {
  HEARTBEAT_MS,
  INVALIDATIONS,
  TRUST_MS,
  sessionEntries,
  type RedisSessionCache,
} from './redis-cache.ts'

export interface RedisClusterSessionCacheOptions {
  /** The full prefix of the session keys, e.g. `bff:{session:` (`redisSessionKeyPrefix`). */
  keyPrefix: string
  /** Most sessions kept; past it the oldest entry goes. @default 10_000 */
  maxEntries?: number
  log?: Logger
  /** Epoch milliseconds. */
  now?: () => number
}

interface Tracker {
  node: string
  subscriber: Redis
  control: Redis
  tracking: boolean
  lastAnswer: number
  checking: boolean
  ended: boolean
}

/**
 * A cache for the sessions a `redisStore` on `cluster` reads. Opens two connections per primary
 * of its own (with the cluster's `redisOptions`) and closes them on `close()`; `cluster` itself
 * stays the caller's.
 */
export function redisClusterSessionCache(
  cluster: Cluster,
  options: RedisClusterSessionCacheOptions
): RedisSessionCache {
  const now = options.now ?? Date.now
  if (cluster.options.scaleReads !== undefined && cluster.options.scaleReads !== 'master') {
    throw new TypeError('the cache needs reads from primaries: "scaleReads" must be "master"')
  }
  const trackers = new Map<string, Tracker>()
  let closed = false
  let warned = false

  /** Whether a copy of `key` may answer; without a key, whether every primary is tracked. */
  function trusted(key?: string): boolean {
    if (closed || cluster.status !== 'ready') return false
    const nodes = key === undefined ? primaries() : [cluster.slots[keySlot(key)]?.[0]]
    if (nodes.length === 0) return false
    return nodes.every((node) => {
      const tracker = node === undefined ? undefined : trackers.get(node)
      return tracker !== undefined && tracker.tracking && now() - tracker.lastAnswer < TRUST_MS
    })
  }

  const entries = sessionEntries({
    keyPrefix: options.keyPrefix,
    maxEntries: options.maxEntries,
    trusted,
    async close() {
      closed = true
      clearInterval(heartbeat)
      cluster.off('refresh', reconcile)
      cluster.off('ready', reconcile)
      cluster.off('+node', reconcile)
      for (const tracker of [...trackers.values()]) end(tracker)
    },
  })

  /** The nodes serving slots as primaries, by the client's slot map. */
  function primaries(): string[] {
    const nodes = new Set<string>()
    for (const owners of cluster.slots) if (owners?.[0]) nodes.add(owners[0])
    return [...nodes]
  }

  function end(tracker: Tracker) {
    if (tracker.ended) return
    tracker.ended = true
    tracker.tracking = false
    entries.forget()
    if (trackers.get(tracker.node) === tracker) trackers.delete(tracker.node)
    tracker.subscriber.disconnect()
    tracker.control.disconnect()
  }

  function connection(node: string): Redis {
    const at = node.lastIndexOf(':')
    const redis = new Redis({
      ...cluster.options.redisOptions,
      host: node.slice(0, at),
      port: Number(node.slice(at + 1)),
      lazyConnect: true,
      // A lost connection ends the tracker; the next check starts a new one if still wanted.
      retryStrategy: () => null,
      autoResubscribe: false,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
    })
    redis.on('error', () => {}) // the cluster client reports Redis's health
    return redis
  }

  async function start(node: string) {
    const tracker: Tracker = {
      node,
      subscriber: connection(node),
      control: connection(node),
      tracking: false,
      lastAnswer: 0,
      checking: false,
      ended: false,
    }
    trackers.set(node, tracker)
    const { subscriber, control } = tracker
    subscriber.on('close', () => end(tracker))
    control.on('close', () => end(tracker))
    subscriber.on('messageBuffer', (channel: Buffer, message: unknown) => {
      if (channel.toString() !== INVALIDATIONS) return
      tracker.lastAnswer = now()
      entries.invalidate(message)
    })
    try {
      await Promise.all([subscriber.connect(), control.connect()])
      const id = await subscriber.client('ID')
      await subscriber.subscribe(INVALIDATIONS)
      await control.call(
        'CLIENT',
        'TRACKING',
        'ON',
        'REDIRECT',
        String(id),
        'BCAST',
        'PREFIX',
        options.keyPrefix
      )
      const [role] = (await control.call('ROLE')) as [string]
      if (tracker.ended) return
      if (role !== 'master') return end(tracker)
      entries.forget() // keys on this node may have changed while nobody tracked them
      tracker.lastAnswer = now()
      tracker.tracking = true
    } catch (err) {
      if (!warned && !closed && !tracker.ended) {
        warned = true
        options.log?.('warn', 'redis.tracking_unavailable', {
          reason: err instanceof Error ? err.name : typeof err,
        })
      }
      end(tracker)
    }
  }

  /** A tracker for every primary of the slot map, none for other nodes. */
  function reconcile() {
    if (closed || cluster.status !== 'ready') return
    const wanted = new Set(primaries())
    for (const tracker of [...trackers.values()]) if (!wanted.has(tracker.node)) end(tracker)
    for (const node of wanted) if (!trackers.has(node)) void start(node)
  }

  function check(tracker: Tracker) {
    if (!tracker.tracking || tracker.checking) return
    tracker.checking = true
    Promise.all([tracker.control.call('ROLE') as Promise<[string]>, tracker.subscriber.ping()])
      .then(([[role]]) => {
        if (role === 'master') tracker.lastAnswer = now()
        else {
          // Demoted by a failover: its slots are served elsewhere now.
          end(tracker)
          cluster.refreshSlotsCache()
        }
      })
      .catch(() => {})
      .finally(() => (tracker.checking = false))
  }

  cluster.on('refresh', reconcile)
  cluster.on('ready', reconcile)
  cluster.on('+node', reconcile)
  reconcile()
  const heartbeat = setInterval(() => {
    reconcile()
    for (const tracker of trackers.values()) check(tracker)
  }, HEARTBEAT_MS)
  heartbeat.unref?.()

  return entries.cache
}

/** The hash slot of a key, as Redis Cluster computes it (CRC16/XMODEM of its hash tag). */
export function keySlot(key: string): number {
  const bytes = new TextEncoder().encode(key)
  let start = 0
  let end = bytes.length
  const open = bytes.indexOf(0x7b) // {
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1) // }
    if (close > open + 1) {
      start = open + 1
      end = close
    }
  }
  let crc = 0
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]! << 8
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    }
  }
  return crc % 16384
}
