/**
 * Bytes per session in the `redis` store: `count` sessions shaped like a real login's (clone.ts),
 * written through the store itself (src/adapters/node/redis-store.ts: its Lua script sets the
 * session key and adds the id to the sid and sub index sets), into a redis-server of its own on a
 * free port, empty and without persistence, so nothing else's keys or fragmentation count.
 *
 * Two figures: Redis's own `used_memory` before and after, per session (everything a session
 * costs the server: its three keys, their expiry entries, the growth of the keyspace's hash
 * tables); and `MEMORY USAGE` of one session's three keys (the values and their key objects only).
 * Each clone is another user, so its sid and sub sets hold one member; a user with several
 * sessions shares a sub set.
 */
import { Redis } from 'ioredis'
import { redisStore } from '../src/adapters/node/redis-store.ts'
import type { Session } from '../src/core/session/types.ts'
import { startRedisServer } from '../test/helpers/redis-server.ts'
import { cloneSession } from './clone.ts'

export interface RedisMemory {
  sessions: number
  /** `used_memory` after minus before, bytes, and that per session. */
  usedMemoryBytes: number
  bytesPerSession: number
  /** `MEMORY USAGE` (all samples) of one session's keys, bytes. */
  keyBytes: { session: number; sid: number; sub: number; total: number }
  sessionJsonBytes: number
}

const PREFIX = 'bff:'
const BATCH = 1000

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory')
  return Number(/^used_memory:(\d+)/m.exec(info)![1])
}

export async function redisPerSession(template: Session, count: number): Promise<RedisMemory> {
  const server = await startRedisServer()
  const redis = new Redis(server.url)
  try {
    const store = redisStore(redis, { prefix: PREFIX })
    const nowSeconds = Math.floor(Date.now() / 1000)
    // One session written and deleted first: the store's scripts are loaded and the client's
    // buffers grown before the baseline, so neither counts against the sessions.
    const warm = cloneSession(template, -1, nowSeconds)
    await store.set(warm)
    await store.delete(warm)
    const before = await usedMemory(redis)
    let sample: Session | undefined
    for (let start = 0; start < count; start += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, count - start) }, (_, j) =>
        cloneSession(template, start + j, nowSeconds)
      )
      sample ??= batch[0]
      await Promise.all(batch.map((session) => store.set(session)))
    }
    const after = await usedMemory(redis)
    const keys = await redis.dbsize()
    if (keys !== 3 * count) throw new Error(`Redis holds ${keys} keys, ${3 * count} expected`)
    const usage = async (key: string) =>
      Number(await redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'))
    const session = await usage(`${PREFIX}session:${sample!.id}`)
    const sid = await usage(`${PREFIX}sid:${sample!.sid}`)
    const sub = await usage(`${PREFIX}sub:${sample!.sub}`)
    return {
      sessions: count,
      usedMemoryBytes: after - before,
      bytesPerSession: Math.round((after - before) / count),
      keyBytes: { session, sid, sub, total: session + sid + sub },
      sessionJsonBytes: JSON.stringify(template).length,
    }
  } finally {
    redis.disconnect()
    await server.stop()
  }
}
