/**
 * A test file's connection to the shared test Redis: every key it writes starts with `run`, and
 * those keys are removed (SCAN, never KEYS) when the enclosing suite is done, so Redis is left as
 * it was found.
 */
import { Redis } from 'ioredis'
import { afterAll, beforeAll } from 'vitest'

export const TEST_REDIS_URL = 'redis://127.0.0.1:6379'

export function useTestRedis(run = `bff-test-${crypto.randomUUID()}:`): {
  run: string
  redis: () => Redis
} {
  let redis: Redis
  beforeAll(async () => {
    redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
  })
  afterAll(async () => {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${run}*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    await redis.quit()
  })
  return { run, redis: () => redis }
}
