/**
 * The session-end bus across Node instances: Redis pub/sub on one channel under the key prefix.
 * An end is told to this instance's listeners at once (no round trip, and still when Redis is
 * away), then published; each instance hears the others' ends on a connection of its own (a
 * subscribed connection can carry nothing else) and skips its own. On loopback an end reaches the
 * other instances in about a millisecond.
 *
 * Pub/sub delivers to whoever listens at that moment: an end published while an instance's
 * subscriber is reconnecting is not heard there. That instance's connections of the session then
 * end at their next deadline, when the store is asked again (session/live.ts), not at once.
 */
import type { RedisClient } from './redis-keys.ts'
import type { Logger } from '../../core/observe/log.ts'
import { sessionEndOf, type SessionEnd, type SessionEndBus } from '../../core/session/live.ts'

export interface RedisSessionEndBusOptions {
  /**
   * The BFF's key prefix (`BFF_REDIS_PREFIX`); the channel is `<client keyPrefix><prefix>session-ends`,
   * so deployments sharing a Redis never hear each other.
   * @default 'bff:'
   */
  prefix?: string
  log?: Logger
}

export interface RedisSessionEndBus extends SessionEndBus {
  /** The channel ends travel on. */
  readonly channel: string
  /** Stops listening and closes the subscriber connection. */
  close(): Promise<void>
}

/** What travels on the channel: the end, and which instance published it. */
interface Message {
  from: string
  end: SessionEnd
}

/**
 * `redis` publishes; `subscriber` is a connection of the bus's own (e.g. `redis.duplicate()`),
 * which it owns and closes. On a Cluster (a `Cluster` for both) the subscriber listens at one node
 * and a publish reaches every node through the cluster bus.
 */
export function redisSessionEndBus(
  redis: RedisClient,
  subscriber: RedisClient,
  options: RedisSessionEndBusOptions = {}
): RedisSessionEndBus {
  const channel = `${redis.options.keyPrefix ?? ''}${options.prefix ?? 'bff:'}session-ends`
  const self = crypto.randomUUID()
  const listeners = new Set<(end: SessionEnd) => void>()
  let closed = false
  let warned = false

  function deliver(end: SessionEnd) {
    for (const listener of [...listeners]) {
      try {
        listener(end)
      } catch {
        // One listener's failure must not keep the others from hearing it.
      }
    }
  }

  async function listen() {
    try {
      await subscriber.subscribe(channel)
    } catch (err) {
      // Tried again at the next `ready`; meanwhile only this instance's own ends are heard.
      if (!warned && !closed) {
        warned = true
        options.log?.('warn', 'redis.session_ends_unavailable', {
          reason: err instanceof Error ? err.name : typeof err,
        })
      }
    }
  }

  subscriber.on('error', () => {}) // the main client reports Redis's health
  // After every (re)connection: ioredis's own resubscription is off, so this is the one.
  subscriber.on('ready', () => void listen())
  subscriber.on('message', (from: string, text: string) => {
    if (from !== channel) return
    let message: Partial<Message>
    try {
      message = JSON.parse(text) as Partial<Message>
    } catch {
      return
    }
    if (message?.from === self) return // told here already, when published
    const end = sessionEndOf(message?.end)
    if (end) deliver(end)
  })
  if (subscriber.status === 'ready') void listen()
  // A duplicate of a client made with lazyConnect waits for a first command that never comes.
  else if (subscriber.status === 'wait') subscriber.connect().catch(() => {})

  return {
    channel,
    async publish(end) {
      deliver(end)
      const message: Message = { from: self, end }
      await redis.publish(channel, JSON.stringify(message))
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async close() {
      closed = true
      listeners.clear()
      await subscriber.quit().catch(() => subscriber.disconnect())
    },
  }
}
