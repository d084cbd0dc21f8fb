/**
 * The Redis shared-token coordinator against the real Redis: one grant for many callers on several
 * instances, the token shared until it is due for renewal, a failed grant leaving the lock at once,
 * and a lock whose holder died taken over once it expires.
 */
import type { Redis } from 'ioredis'
import { beforeAll, describe, expect, it } from 'vitest'
import { useTestRedis } from '../../helpers/redis-run.ts'
import { redisSharedTokenCoordinator } from '../../../src/adapters/node/redis-shared-tokens.ts'
import type { SharedToken } from '../../../src/core/tokens/shared-token.ts'
import { sleep } from '../../../src/testing/store-contract.ts'

// Every key this file writes starts with RUN; they are removed when it is done.
const test = useTestRedis()
const RUN = test.run
let redis: Redis
beforeAll(() => {
  redis = test.redis()
})

/** A grant that takes a moment, counts its runs, and gives a token valid `life` s from now(). */
function countingGrant(now: () => number, life = 60) {
  let grants = 0
  const grant = async (): Promise<SharedToken> => {
    grants++
    await sleep(50)
    const t = Math.floor(now() / 1000)
    return { accessToken: `token-${grants}`, expiresAt: t + life, renewAt: t + life / 2 }
  }
  return { grant, grants: () => grants }
}

describe('redisSharedTokenCoordinator', () => {
  it('one grant for 20 callers on two instances; shared until due, then one more', async () => {
    let offset = 0
    const now = () => Date.now() + offset
    const prefix = `${RUN}shared:`
    const instances = [0, 1].map(() => redisSharedTokenCoordinator(redis, { prefix, now }))
    const { grant, grants } = countingGrant(now)
    const tokens = await Promise.all(
      Array.from({ length: 20 }, (_, i) => instances[i % 2]!.tokenOnce('k', grant))
    )
    expect(grants()).toBe(1)
    expect(new Set(tokens.map((t) => t.accessToken))).toEqual(new Set(['token-1']))
    expect((await instances[1]!.tokenOnce('k', grant)).accessToken).toBe('token-1')
    // Another key is another token.
    expect((await instances[0]!.tokenOnce('other', grant)).accessToken).toBe('token-2')
    offset += 31_000 // past renewAt
    const renewed = await Promise.all(instances.map((c) => c.tokenOnce('k', grant)))
    expect(renewed.map((t) => t.accessToken)).toEqual(['token-3', 'token-3'])
  })

  it('a failed grant frees the lock at once: the next caller grants without waiting', async () => {
    const coordinator = redisSharedTokenCoordinator(redis, {
      prefix: `${RUN}fail:`,
      lockMs: 10_000,
    })
    await expect(
      coordinator.tokenOnce('k', async () => {
        throw new Error('IdP said no')
      })
    ).rejects.toThrow('IdP said no')
    const started = Date.now()
    const { grant } = countingGrant(Date.now)
    expect((await coordinator.tokenOnce('k', grant)).accessToken).toBe('token-1')
    expect(Date.now() - started).toBeLessThan(2000)
  })

  it('takes over a lock whose holder died once it expires', async () => {
    const prefix = `${RUN}dead:`
    await redis.set(`${prefix}token-lock:k`, 'a-dead-holder', 'PX', 300)
    const coordinator = redisSharedTokenCoordinator(redis, { prefix, lockMs: 300 })
    const { grant, grants } = countingGrant(Date.now)
    const started = Date.now()
    expect((await coordinator.tokenOnce('k', grant)).accessToken).toBe('token-1')
    expect(grants()).toBe(1)
    expect(Date.now() - started).toBeGreaterThanOrEqual(200)
  })
})
