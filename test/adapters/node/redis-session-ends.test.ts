/**
 * The Redis session-end bus against the real Redis: an end published by one instance reaches the
 * other (and its own listeners once, not again from Redis), deployments with other prefixes hear
 * nothing, and whatever else arrives on the channel (garbage, a wrong shape) is dropped without a
 * throw.
 */
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { redisSessionEndBus } from '../../../src/adapters/node/redis-session-ends.ts'
import type { SessionEnd } from '../../../src/core/session/live.ts'
import { TEST_REDIS_URL, useTestRedis } from '../../helpers/redis-run.ts'

const { run } = useTestRedis()
const clients: Redis[] = []
function client(): Redis {
  const redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1 })
  clients.push(redis)
  return redis
}
afterAll(async () => {
  await Promise.all(clients.map((redis) => redis.quit().catch(() => {})))
})

function instance(prefix = run) {
  const redis = client()
  const bus = redisSessionEndBus(redis, redis.duplicate(), { prefix })
  const heard: SessionEnd[] = []
  bus.subscribe((end) => heard.push(end))
  return { bus, heard, redis }
}

/** Waits until the subscriber connection is listening (it subscribes once connected). */
async function listening(redis: Redis, channel: string) {
  for (let i = 0; i < 100; i++) {
    const [, count] = (await redis.pubsub('NUMSUB', channel)) as [string, number]
    if (count > 0) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error('the bus never subscribed')
}

describe('redisSessionEndBus', () => {
  it('carries an end to the other instance, and to its own listeners once', async () => {
    const a = instance()
    const b = instance()
    await listening(a.redis, a.bus.channel)
    const end: SessionEnd = { reason: 'backchannel_logout', sid: 'sid-1', idp: 'corp' }
    const arrived = new Promise<number>((resolve) =>
      b.bus.subscribe(() => resolve(performance.now()))
    )
    const start = performance.now()
    await a.bus.publish(end)
    expect(a.heard).toEqual([end]) // at once, before Redis
    const ms = (await arrived) - start
    expect(b.heard).toEqual([end])
    console.log(`redis bus: an end reached the other instance in ${ms.toFixed(1)} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(a.heard).toHaveLength(1) // its own message from Redis is skipped
    await Promise.all([a.bus.close(), b.bus.close()])
  })

  it('keeps deployments with other prefixes apart', async () => {
    const mine = instance()
    const theirs = instance(`${run}other:`)
    await listening(mine.redis, theirs.bus.channel)
    await mine.bus.publish({ reason: 'logout', id: 'x' })
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(theirs.heard).toEqual([])
    await Promise.all([mine.bus.close(), theirs.bus.close()])
  })

  it('drops whatever else arrives on the channel, and goes on', async () => {
    const a = instance()
    await listening(a.redis, a.bus.channel)
    const raw = client()
    for (const text of [
      'not json',
      'null',
      JSON.stringify({ from: 'x', end: { reason: 'logout' } }),
      JSON.stringify({ from: 'x', end: { reason: 'shutdown', id: 'a' } }),
      JSON.stringify({ from: 'x', end: { reason: 'logout', id: 'a', sub: 'b' } }),
      JSON.stringify({ from: 'x', end: { reason: 'logout', id: { $gt: '' } } }),
    ]) {
      await raw.publish(a.bus.channel, text)
    }
    const good = { reason: 'admin_revoke', sub: 'u', idp: 'corp' } as const
    await raw.publish(a.bus.channel, JSON.stringify({ from: 'elsewhere', end: good }))
    await expect.poll(() => a.heard).toEqual([good])
    await a.bus.close()
  })
})
