/**
 * The in-process session cache on a real Redis Cluster (redis-cluster-cache.ts): a tracker per
 * primary, so a change made by another instance is seen whichever shard holds the session; and
 * after a failover the cache forgets and tracks the new primary. The slot computation is checked
 * against the cluster's own.
 */
import { Cluster } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { keySlot, redisClusterSessionCache } from '../../src/adapters/node/redis-cluster-cache.ts'
import type { RedisSessionCache } from '../../src/adapters/node/redis-cache.ts'
import { redisSessionKeyPrefix, redisStore } from '../../src/adapters/node/redis-store.ts'
import type { Session, SessionStore } from '../../src/core/session/types.ts'
import { makeSession, sleep, testStore } from '../../src/testing/store-contract.ts'
import { clusterClient, useRedisCluster } from '../helpers/redis-cluster-run.ts'

const local = useRedisCluster()
const closers: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {})
})

interface Instance {
  redis: Cluster
  cache: RedisSessionCache
  store: SessionStore
  /** GET commands this instance has sent to Redis so far. */
  gets(): number
}

async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await sleep(5)
  }
}

async function instance(prefix: string): Promise<Instance> {
  const redis = clusterClient(local.cluster())
  closers.push(async () => redis.disconnect())
  await until(() => redis.status === 'ready')
  let gets = 0
  const get = redis.get.bind(redis)
  redis.get = ((...args: Parameters<Cluster['get']>) => {
    gets++
    return get(...args)
  }) as Cluster['get']
  const cache = redisClusterSessionCache(redis, { keyPrefix: redisSessionKeyPrefix(redis, prefix) })
  closers.push(() => cache.close())
  await until(() => cache.active)
  return { redis, cache, store: redisStore(redis, { prefix, cache }), gets: () => gets }
}

/**
 * Whether `a` comes to answer the session from memory: another instance's write is reported on a
 * connection of its own, and a report arriving after the first read drops what it kept.
 */
async function servedFromMemory(a: Instance, id: string): Promise<void> {
  await until(async () => {
    await a.store.get({ id })
    const before = a.gets()
    await a.store.get({ id })
    return a.gets() === before
  }, 2000)
}

const freshPrefix = () => `c${crypto.randomUUID().slice(0, 8)}:`

testStore('redis on a Cluster, cached', async () => {
  const { store } = await instance(freshPrefix())
  return { store }
})

describe('the session cache on a Cluster', () => {
  it('computes the slot of a key as the cluster does', async () => {
    const keys = [
      'bff:{session:abc}',
      'plain',
      '{}empty-tag',
      'no{close',
      'a{b}{c}',
      '{user1000}.following',
      'ünïcödé{tag}',
      'x{}y{z}',
    ]
    for (const key of keys) {
      expect(keySlot(key)).toBe(
        Number(await local.cluster().nodes[0]!.cli('CLUSTER', 'KEYSLOT', key))
      )
    }
  })

  it('tracks every primary, with one tracking connection each', async () => {
    const { cache } = await instance(freshPrefix())
    expect(cache.active).toBe(true)
    const primaries = local.redis().nodes('master')
    expect(primaries).toHaveLength(3)
    for (const node of primaries) {
      const clients = (await node.client('LIST')) as string
      expect(clients.split('\n').some((line) => /\bflags=\S*t/.test(line))).toBe(true)
    }
  })

  it('answers from memory, and sees another instance change a session on any shard', async () => {
    const prefix = freshPrefix()
    const a = await instance(prefix)
    const b = await instance(prefix)
    // Four sessions on each primary, interleaved so both the updated and the deleted half touch
    // every shard (12 random ids fell on two shards only about once in 40 runs).
    const byShard = new Map<number, Session[]>()
    while (byShard.size < 3 || [...byShard.values()].some((list) => list.length < 4)) {
      const session = makeSession()
      const port = (await local.cluster().primaryOf(`${prefix}{session:${session.id}}`)).port
      const list = byShard.get(port) ?? []
      if (list.length < 4) byShard.set(port, [...list, session])
    }
    const shards = [...byShard.values()]
    const sessions = [0, 1, 2, 3].flatMap((i) => shards.map((list) => list[i]!))
    for (const session of sessions) await b.store.set(session)
    for (const session of sessions) await servedFromMemory(a, session.id)
    const before = a.gets()
    for (const session of sessions) expect(await a.store.get({ id: session.id })).toEqual(session)
    expect(a.gets()).toBe(before)

    const [updated, deleted] = [sessions.slice(0, 6), sessions.slice(6)]
    for (const session of updated) {
      await b.store.update({ ...session, accessToken: 'new', generation: 2 })
    }
    for (const session of deleted) await b.store.delete(session)
    // Each shard's message arrives within moments (loopback).
    await until(async () => {
      const seen = await Promise.all(sessions.map((s) => a.store.get({ id: s.id })))
      return seen.every((s, i) => (i < 6 ? s?.accessToken === 'new' : s === null))
    }, 1000)
  })

  it('after a failover, forgets what it held and tracks the new primary', async () => {
    const prefix = freshPrefix()
    const a = await instance(prefix)
    const b = await instance(prefix)
    const session = makeSession()
    await b.store.set(session)
    expect(await a.store.get({ id: session.id })).toEqual(session)
    const cluster = local.cluster()
    const key = `${prefix}{session:${session.id}}`
    const primary = await cluster.primaryOf(key)
    const [replica] = await cluster.replicasOf(primary)
    expect(await replica!.cli('CLUSTER', 'FAILOVER')).toBe('OK')
    await until(async () => (await cluster.primaryOf(key)).port === replica!.port)
    // Past the demoted primary's next ROLE check.
    await sleep(300)
    await b.store.delete(session)
    expect(await a.store.get({ id: session.id })).toBeNull()
    // Tracking again, on the new primary too.
    await until(() => a.cache.active)
    const again = makeSession()
    await b.store.set(again)
    await servedFromMemory(a, again.id)
    expect(await a.store.get({ id: again.id })).toEqual(again)
    await cluster.waitHealthy()
  })
})
