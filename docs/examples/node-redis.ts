import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { Redis } from 'ioredis'
import { createBff, optionsFromEnv } from 'bff-session-broker'
import { nodeForward } from 'bff-session-broker/node'
import {
  redisRefreshCoordinator,
  redisReplayGuard,
  redisSessionEndBus,
  redisStore,
} from 'bff-session-broker/redis'

// Sessions in Redis, shared by every instance; one refresh grant per session across all of them;
// each logout token used once; a session's end closes its event streams on every instance. A
// Redis that hangs must not hang requests: commands give up after 2 s.
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
  commandTimeout: 2000,
})
const prefix = 'my-app:'
const store = redisStore(redis, { prefix })

const app = new Hono()
app.route(
  '/',
  createBff(optionsFromEnv(process.env), {
    store,
    refreshCoordinator: redisRefreshCoordinator(redis, { prefix, sessions: store }),
    replay: redisReplayGuard(redis, { prefix }),
    // Pub/sub needs a connection of its own.
    sessionEnds: redisSessionEndBus(redis, redis.duplicate(), { prefix }),
    forward: nodeForward(),
  })
)

serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000) }, (info) => {
  console.log(`listening on ${info.port}`)
})
