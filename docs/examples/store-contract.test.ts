import { Redis } from 'ioredis'
import { afterAll } from 'vitest'
import { redisStore } from 'bff-session-broker/redis'
import { testStore } from 'bff-session-broker/testing'

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
const prefix = `contract-${Date.now()}:`

afterAll(async () => {
  for await (const keys of redis.scanStream({ match: `${prefix}*` })) {
    if (keys.length > 0) await redis.del(...keys)
  }
  await redis.quit()
})

// Your own SessionStore goes here (Postgres, DynamoDB, …): redisStore stands in for it.
testStore('my store', async () => ({ store: redisStore(redis, { prefix }) }))
