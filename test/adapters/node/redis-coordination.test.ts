/**
 * The Redis refresh coordinator against the real Redis: one grant per session generation across
 * instances, the sessions it writes through when they live in Redis, and a lock wait bounded on
 * the app's clock.
 */
import type { Redis } from 'ioredis'
import { beforeAll, describe, expect, it } from 'vitest'
import { useTestRedis } from '../../helpers/redis-run.ts'
import { redisRefreshCoordinator } from '../../../src/adapters/node/redis-coordination.ts'
import { redisStore } from '../../../src/adapters/node/redis-store.ts'
import type { Session } from '../../../src/core/session/types.ts'
import { makeSession, sleep } from '../../../src/testing/store-contract.ts'

// Every key this file writes starts with RUN; they are removed when it is done.
const test = useTestRedis()
const RUN = test.run
let redis: Redis
beforeAll(() => {
  redis = test.redis()
})

/** A refresh grant that takes a moment and counts how often it ran. */
function countingGrant() {
  let grants = 0
  const grant = async (session: Session): Promise<Session> => {
    grants++
    await sleep(50)
    return { ...session, accessToken: `fresh-${grants}`, generation: session.generation + 1 }
  }
  return { grant, grants: () => grants }
}

describe('redisRefreshCoordinator', () => {
  it('refreshes a generation once for two instances calling at the same time', async () => {
    const prefix = `${RUN}once:`
    const [a, b] = [
      redisRefreshCoordinator(redis, { prefix }),
      redisRefreshCoordinator(redis, { prefix }),
    ]
    const session = makeSession()
    const { grant, grants } = countingGrant()
    const results = await Promise.all([
      ...Array.from({ length: 5 }, () => a.refreshOnce(session, grant)),
      ...Array.from({ length: 5 }, () => b.refreshOnce(session, grant)),
    ])
    expect(grants()).toBe(1)
    expect(new Set(results.map((r) => r.accessToken))).toEqual(new Set(['fresh-1']))
  })

  it('with the sessions in Redis: stores the new tokens, and takes a newer stored generation as done', async () => {
    const prefix = `${RUN}stored:`
    const sessions = redisStore(redis, { prefix })
    const coordinator = redisRefreshCoordinator(redis, { prefix, sessions })
    const session = makeSession()
    await sessions.set(session)
    const { grant, grants } = countingGrant()
    const refreshed = await coordinator.refreshOnce(session, grant)
    expect(await sessions.get({ id: session.id })).toEqual(refreshed)

    // Generation 3 stored by someone else, its published result long gone: no grant for 2.
    const third = { ...refreshed, accessToken: 'third', generation: 3 }
    await sessions.update(third)
    await redis.del(`${prefix}refreshed:${session.id}:2`)
    expect(await coordinator.refreshOnce(refreshed, grant)).toEqual(third)
    expect(grants()).toBe(1)
  })

  it('gives up waiting for a lock when the app clock says the wait is over', async () => {
    const prefix = `${RUN}wait:`
    let time = Date.now()
    const lockMs = 60_000
    const coordinator = redisRefreshCoordinator(redis, { prefix, lockMs, now: () => time })
    const session = makeSession()
    // Another instance holds the lock and never answers.
    await redis.set(`${prefix}lock:${session.id}`, 'someone-else', 'PX', lockMs)
    const { grant, grants } = countingGrant()
    const started = Date.now()
    const waiting = coordinator.refreshOnce(session, grant)
    await sleep(100)
    time += 2 * lockMs + 1
    await expect(waiting).rejects.toThrow('timed out waiting for the refresh lock')
    // On real time this would have waited two minutes.
    expect(Date.now() - started).toBeLessThan(5_000)
    expect(grants()).toBe(0)
  })
})
