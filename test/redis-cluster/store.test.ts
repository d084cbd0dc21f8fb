/**
 * The `redis` store on a real Redis Cluster (3 primaries, 3 replicas, started for this file): the
 * store contract, the cluster key layout (every script in one slot, sessions spread over the
 * shards), and the race between a login and a back-channel logout of its sid, which on a Cluster
 * no single script can settle.
 */
import type { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redisStore } from '../../src/adapters/node/redis-store.ts'
import { TOMBSTONE_MS } from '../../src/adapters/node/redis-cluster-store.ts'
import { redisRevocationList } from '../../src/adapters/node/redis-coordination.ts'
import { redisClusterSessionCache } from '../../src/adapters/node/redis-cluster-cache.ts'
import { cookieStore } from '../../src/core/session/stores/cookie.ts'
import type { Session } from '../../src/core/session/types.ts'
import { makeSession, sleep, testStore } from '../../src/testing/store-contract.ts'
import { clusterClient, useRedisCluster } from '../helpers/redis-cluster-run.ts'

const local = useRedisCluster()
let redis: Cluster
beforeAll(() => {
  redis = local.redis()
})

function fakeClock() {
  let time = Date.now()
  return { now: () => time, advance: (ms: number) => void (time += ms) }
}

const freshPrefix = () => `t${crypto.randomUUID().slice(0, 8)}:`

testStore('redis on a Cluster', async () => {
  const clock = fakeClock()
  const store = redisStore(redis, { prefix: freshPrefix(), now: clock.now })
  return { store, advance: clock.advance }
})

// Cookie mode's revocation list and generation ledger: a revocation check reads keys of several
// slots, which a Cluster refuses in one MGET.
testStore('cookie with revocations on a Cluster', async () => {
  const clock = fakeClock()
  const revocations = redisRevocationList(redis, { prefix: freshPrefix(), now: clock.now })
  return { store: cookieStore({ now: clock.now, revocations }), advance: clock.advance }
})

describe('redisStore on a Cluster', () => {
  it('keeps a session under its id as hash tag and indexes it by sid and sub', async () => {
    const prefix = freshPrefix()
    const store = redisStore(redis, { prefix })
    const session = makeSession()
    await store.set(session)
    expect(JSON.parse((await redis.get(`${prefix}{session:${session.id}}`))!)).toEqual(session)
    for (const key of [`${prefix}{sid:${session.sid}}`, `${prefix}{sub:${session.sub}}`]) {
      // Scored by when the session ends at the latest.
      expect(Number(await redis.zscore(key, session.id))).toBe(session.expiresAt * 1000)
      expect(await redis.pttl(key)).toBeGreaterThan(3_600_000)
    }
    // No key of the single-node layout.
    expect(await redis.exists(`${prefix}session:${session.id}`)).toBe(0)
  })

  it('spreads sessions over every primary, not one slot', async () => {
    const prefix = freshPrefix()
    const store = redisStore(redis, { prefix })
    const cluster = local.cluster()
    const primaries = new Set<number>()
    const sub = `user-${crypto.randomUUID()}`
    for (let i = 0; i < 30; i++) {
      const session = makeSession({ sub })
      await store.set(session)
      primaries.add((await cluster.primaryOf(`${prefix}{session:${session.id}}`)).port)
    }
    // 30 random ids on 3 shards: all on two or fewer has a chance of about 1 in 60 000.
    expect(primaries.size).toBe(3)
    expect(await store.listBySub(sub)).toHaveLength(30)
    expect(await store.deleteBySub(sub)).toBe(30)
  })

  it('drops index entries a minute after their sessions ended, and keeps live ones', async () => {
    const prefix = freshPrefix()
    const clock = fakeClock()
    const store = redisStore(redis, { prefix, now: clock.now })
    const sub = `user-${crypto.randomUUID()}`
    const nowSeconds = Math.floor(clock.now() / 1000)
    const short = makeSession({ sub, expiresAt: nowSeconds + 10 })
    const long = makeSession({ sub, expiresAt: nowSeconds + 3600 })
    await store.set(short)
    await store.set(long)
    clock.advance(10_000 + TOMBSTONE_MS - 1000)
    await store.set(makeSession({ sub }))
    expect(await redis.zscore(`${prefix}{sub:${sub}}`, short.id)).not.toBeNull()
    clock.advance(2000)
    await store.set(makeSession({ sub }))
    expect(await redis.zscore(`${prefix}{sub:${sub}}`, short.id)).toBeNull()
    expect(await redis.zscore(`${prefix}{sub:${sub}}`, long.id)).not.toBeNull()
  })

  it('refuses a prefix with a brace, and a cache of other keys', () => {
    expect(() => redisStore(redis, { prefix: 'a{b}:' })).toThrow(/"prefix".*"\{"/)
    const cache = redisClusterSessionCache(redis, { keyPrefix: 'x{session:' })
    try {
      expect(() => redisStore(redis, { prefix: 'y', cache })).toThrow(/"cache" must track/)
    } finally {
      void cache.close()
    }
  })
})

/**
 * A store whose session writes (the step after indexing) wait for `open()`: a login paused
 * between its two steps, on a client of its own.
 */
async function pausedWriter(prefix: string) {
  const client = clusterClient(local.cluster())
  const store = redisStore(client, { prefix })
  const scripts = client as unknown as Record<string, (...args: string[]) => Promise<number>>
  const write = scripts.bffClusterWrite!.bind(client)
  let open!: () => void
  const gate = new Promise<void>((resolve) => (open = resolve))
  let reached!: () => void
  const atGate = new Promise<void>((resolve) => (reached = resolve))
  scripts.bffClusterWrite = async (...args: string[]) => {
    reached()
    await gate
    return write(...args)
  }
  return { store, atGate, open, close: () => client.disconnect() }
}

describe('a login racing a back-channel logout on a Cluster', () => {
  const closers: Array<() => void> = []
  afterAll(() => closers.forEach((close) => close()))

  it('refuses a create indexed before the logout and written after it', async () => {
    const prefix = freshPrefix()
    const other = redisStore(redis, { prefix })
    const login = await pausedWriter(prefix)
    closers.push(login.close)
    const session = makeSession()
    const created = login.store.set(session)
    await login.atGate
    // The logout finds the id in the index, but no session yet: it counts none, and leaves a
    // tombstone in the session's slot.
    expect(await other.deleteBySid(session.sid)).toBe(0)
    login.open()
    await created
    expect(await other.get({ id: session.id })).toBeNull()
    expect(await other.update({ ...session, generation: 2 })).toBeNull()
    // The logged-out id stays refused while its tombstone lasts.
    await other.set(session)
    expect(await other.get({ id: session.id })).toBeNull()
  })

  it('does not let a rewrite in flight revive a session the logout deleted', async () => {
    const prefix = freshPrefix()
    const other = redisStore(redis, { prefix })
    const session = makeSession()
    await other.set(session)
    const rewrite = await pausedWriter(prefix)
    closers.push(rewrite.close)
    const written = rewrite.store.set({ ...session, accessToken: 'rewritten', generation: 2 })
    await rewrite.atGate
    expect(await other.deleteBySid(session.sid)).toBe(1)
    rewrite.open()
    await written
    expect(await other.get({ id: session.id })).toBeNull()
  })

  it('a create indexed after the logout read the index is a later login, and stays indexed', async () => {
    const prefix = freshPrefix()
    const other = redisStore(redis, { prefix })
    const session = makeSession()
    expect(await other.deleteBySid(session.sid)).toBe(0)
    await other.set(session)
    expect(await other.get({ id: session.id })).toEqual(session)
    expect(await other.deleteBySid(session.sid)).toBe(1)
  })

  it('never leaves a session alive and out of its index, under concurrent logins and logouts', async () => {
    const prefix = freshPrefix()
    const a = redisStore(redis, { prefix })
    const b = redisStore(clusterClient(local.cluster()), { prefix })
    const outcomes = { survived: 0, ended: 0 }
    const rounds = 150
    await Promise.all(
      Array.from({ length: rounds }, async (_, i) => {
        const sid = crypto.randomUUID()
        const sessions: Session[] = [makeSession({ sid }), makeSession({ sid })]
        const jitter = () => sleep(Math.random() * 3)
        await Promise.all([
          ...sessions.map(async (s, j) => {
            await jitter()
            await (j % 2 ? a : b).set(s)
          }),
          (async () => {
            await jitter()
            await (i % 2 ? a : b).deleteBySid(sid)
          })(),
        ])
        for (const s of sessions) {
          if ((await a.get({ id: s.id })) === null) {
            outcomes.ended++
            continue
          }
          // A login after the logout: it must still be found by the next one.
          outcomes.survived++
          expect(await redis.zscore(`${prefix}{sid:${sid}}`, s.id)).not.toBeNull()
        }
        await a.deleteBySid(sid)
        for (const s of sessions) expect(await b.get({ id: s.id })).toBeNull()
      })
    )
    expect(outcomes.survived + outcomes.ended).toBe(2 * rounds)
  })
})
