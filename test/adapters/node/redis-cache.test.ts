/**
 * The Redis store's in-process session cache (CLIENT TRACKING in broadcast mode), against a
 * private redis-server: what it saves (Redis round trips) and every way it could serve a session
 * Redis no longer holds as it is: another instance's write or delete, a flush, a read overtaken by
 * an invalidation, a dropped invalidation connection, a hung Redis, a Redis that refuses tracking.
 */
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Logger } from '../../../src/core/observe/log.ts'
import {
  redisSessionCache,
  TRUST_MS,
  type RedisSessionCache,
} from '../../../src/adapters/node/redis-cache.ts'
import { redisStore } from '../../../src/adapters/node/redis-store.ts'
import type { Session, SessionStore } from '../../../src/core/session/types.ts'
import { startRedisServer, type RedisServer } from '../../helpers/redis-server.ts'
import { makeSession, sleep } from '../../../src/testing/store-contract.ts'

const KEY_PREFIX = 'bff:session:'
const key = (session: Session) => `${KEY_PREFIX}${session.id}`

let server: RedisServer
const closers: Array<() => Promise<unknown>> = []

beforeAll(async () => {
  server = await startRedisServer()
}, 20_000)
afterAll(() => server?.stop())
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {})
})

function client(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: 500 })
  redis.on('error', () => {})
  closers.push(async () => redis.disconnect())
  return redis
}

interface Instance {
  redis: Redis
  cache: RedisSessionCache
  store: SessionStore
  /** GET commands this instance has sent to Redis so far. */
  gets(): number
}

/** One BFF instance's share: its client, its cache, a redis store using both. */
async function instance(
  options: { url?: string; maxEntries?: number; log?: Logger; tracked?: boolean } = {}
): Promise<Instance> {
  const redis = client(options.url ?? server.url)
  let gets = 0
  const get = redis.get.bind(redis)
  redis.get = ((...args: Parameters<Redis['get']>) => {
    gets++
    return get(...args)
  }) as Redis['get']
  const cache = redisSessionCache(redis.duplicate({ autoResubscribe: false }), {
    keyPrefix: KEY_PREFIX,
    maxEntries: options.maxEntries,
    log: options.log,
  })
  closers.push(() => cache.close())
  const store = redisStore(redis, { cache, operationTimeoutMs: 500 })
  if (options.tracked !== false) await until(() => cache.active)
  return { redis, cache, store, gets: () => gets }
}

async function until(check: () => boolean | Promise<boolean>, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await sleep(5)
  }
}

/**
 * Waits for Redis's messages about this instance's own writes: one arriving after a read would
 * rightly evict what that read kept, and a test counting GETs would count one more.
 */
async function settled(a: Instance): Promise<void> {
  let ticket
  do {
    ticket = a.cache.ticket()
    await sleep(20)
  } while (ticket !== a.cache.ticket())
}

/**
 * Makes a's GETs answer only once `change` has run and Redis's message about it has reached a:
 * an invalidation overtaking the read. Returns the undo.
 */
function overtakenBy(a: Instance, change: () => Promise<unknown>): () => void {
  const get = a.redis.get
  a.redis.get = (async (...args: Parameters<Redis['get']>) => {
    const answer = await get(...args)
    const ticket = a.cache.ticket()
    await change()
    await until(() => a.cache.ticket() !== ticket, 200)
    return answer
  }) as Redis['get']
  return () => {
    a.redis.get = get
  }
}

describe('redis session cache', () => {
  it('answers repeated reads from memory, with copies the caller may change', async () => {
    const a = await instance()
    const session = makeSession()
    await a.store.set(session)
    await settled(a)
    expect(await a.store.get({ id: session.id })).toEqual(session)
    const before = a.gets()
    for (let i = 0; i < 20; i++) expect(await a.store.get({ id: session.id })).toEqual(session)
    expect(a.gets()).toBe(before)

    const copy = (await a.store.get({ id: session.id }))!
    copy.accessToken = 'changed by the caller'
    ;(copy.claims as { name: string }).name = 'changed too'
    expect(await a.store.get({ id: session.id })).toEqual(session)
  })

  it("sees another instance's update and delete as soon as Redis reports them", async () => {
    const [a, b] = [await instance(), await instance()]
    const session = makeSession()
    await a.store.set(session)
    await a.store.get({ id: session.id }) // cached in a

    const newer = { ...session, accessToken: 'new-access-token', generation: 2 }
    await b.store.update(newer)
    await until(
      async () => (await a.store.get({ id: session.id }))?.accessToken === newer.accessToken,
      200
    )

    await b.store.deleteBySid(session.sid)
    await until(async () => (await a.store.get({ id: session.id })) === null, 200)
  })

  it('drops a session changed behind every store, by a plain Redis command', async () => {
    const a = await instance()
    const session = makeSession()
    await a.store.set(session)
    await a.store.get({ id: session.id })
    await client(server.url).del(key(session))
    await until(async () => (await a.store.get({ id: session.id })) === null, 200)
  })

  it('forgets everything when Redis is flushed', async () => {
    const a = await instance()
    const sessions = [makeSession(), makeSession()]
    for (const session of sessions) {
      await a.store.set(session)
      await a.store.get({ id: session.id })
    }
    await client(server.url).flushall()
    for (const session of sessions) {
      await until(async () => (await a.store.get({ id: session.id })) === null, 200)
    }
  })

  it('does not keep a read that an invalidation overtook', async () => {
    const [a, b] = [await instance(), await instance()]
    const session = makeSession()
    await a.store.set(session)
    // a's GET is answered with the old session; before a sees that answer, b writes a newer one
    // and Redis's message about it reaches a first.
    const restore = overtakenBy(a, () =>
      b.store.update({ ...session, accessToken: 'newer', generation: 2 })
    )
    expect((await a.store.get({ id: session.id }))?.accessToken).toBe(session.accessToken)
    restore()
    // The old answer served its read but was not kept: the next read asks Redis again.
    expect((await a.store.get({ id: session.id }))?.accessToken).toBe('newer')

    const ticket = a.cache.ticket()
    await b.store.delete(session)
    await until(() => a.cache.ticket() !== ticket, 200)
    a.cache.keep(key(session), session, ticket)
    expect(a.cache.get(key(session))).toBeUndefined()
  })

  it('keeps a read that only an invalidation of another session overtook', async () => {
    const [a, b] = [await instance(), await instance()]
    const session = makeSession()
    const other = makeSession()
    await a.store.set(session)
    await b.store.set(other)
    await settled(a)
    // a's GET is answered; before a sees that answer, b writes another session and Redis's
    // message about it reaches a first: nothing this read answered has changed.
    const restore = overtakenBy(a, () =>
      b.store.update({ ...other, accessToken: 'newer', generation: 2 })
    )
    expect((await a.store.get({ id: session.id }))?.accessToken).toBe(session.accessToken)
    restore()
    const before = a.gets()
    expect((await a.store.get({ id: session.id }))?.accessToken).toBe(session.accessToken)
    expect(a.gets()).toBe(before)
  })

  it('stops answering from memory when its connection drops, and tracks again after reconnecting', async () => {
    const [a, other] = [await instance(), client(server.url)]
    const session = makeSession()
    await a.store.set(session)
    await a.store.get({ id: session.id })
    // The connection goes, and with it the message about the delete that follows.
    await other.client('KILL', 'TYPE', 'pubsub')
    await other.del(key(session))
    await until(() => !a.cache.active, 500)
    expect(await a.store.get({ id: session.id })).toBeNull()

    await until(() => a.cache.active, 5000)
    const again = makeSession()
    await a.store.set(again)
    await settled(a)
    await a.store.get({ id: again.id })
    const before = a.gets()
    await a.store.get({ id: again.id })
    expect(a.gets()).toBe(before) // cached again
    await other.del(key(again))
    await until(async () => (await a.store.get({ id: again.id })) === null, 200)
  })

  it(`stops answering from memory within ${TRUST_MS} ms when Redis hangs, then fails closed`, async () => {
    const a = await instance()
    const session = makeSession()
    await a.store.set(session)
    await a.store.get({ id: session.id })
    server.pause()
    const pausedAt = Date.now()
    let lastAnswer = pausedAt
    let failure: unknown
    try {
      while (Date.now() - pausedAt < TRUST_MS + 2000) {
        try {
          await a.store.get({ id: session.id })
          lastAnswer = Date.now()
        } catch (err) {
          failure = err
          break
        }
        await sleep(20)
      }
    } finally {
      server.resume()
    }
    expect(failure, 'a read fails once the cache is no longer trusted').toBeInstanceOf(Error)
    expect(lastAnswer - pausedAt).toBeLessThan(TRUST_MS + 100)

    await until(() => a.cache.active, 5000)
    expect(await a.store.get({ id: session.id })).toEqual(session)
  })

  it('is refused by a store whose keys it does not track', async () => {
    const redis = client(server.url)
    const cache = redisSessionCache(redis.duplicate({ autoResubscribe: false }), {
      keyPrefix: 'other:session:',
    })
    closers.push(() => cache.close())
    expect(() => redisStore(redis, { cache })).toThrow(/bff:session:/)
    expect(() => redisStore(redis, { cache, prefix: 'other:' })).not.toThrow()
  })

  it('keeps at most maxEntries sessions, dropping the oldest', async () => {
    const a = await instance({ maxEntries: 2 })
    const sessions = [makeSession(), makeSession(), makeSession()]
    for (const session of sessions) await a.store.set(session)
    await settled(a)
    for (const session of sessions) await a.store.get({ id: session.id })
    const before = a.gets()
    await a.store.get({ id: sessions[2]!.id })
    expect(a.gets()).toBe(before)
    await a.store.get({ id: sessions[0]!.id })
    expect(a.gets()).toBe(before + 1)
  })
})

describe('redis session cache without tracking', () => {
  let plain: RedisServer
  beforeAll(async () => {
    plain = await startRedisServer(['--rename-command', 'CLIENT', ''])
  }, 20_000)
  afterAll(() => plain?.stop())

  it('stays off where Redis refuses CLIENT TRACKING, says so once, and reads Redis every time', async () => {
    const events: string[] = []
    const a = await instance({
      url: plain.url,
      tracked: false,
      log: (_level, event) => void events.push(event),
    })
    await until(() => events.length > 0)
    expect(events).toEqual(['redis.tracking_unavailable'])
    expect(a.cache.active).toBe(false)
    const session = makeSession()
    await a.store.set(session)
    for (let i = 0; i < 3; i++) expect(await a.store.get({ id: session.id })).toEqual(session)
    expect(a.gets()).toBe(3)
  })
})
