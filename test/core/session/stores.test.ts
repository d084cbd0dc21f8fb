import { Redis } from 'ioredis'
import { useTestRedis } from '../../helpers/redis-run.ts'
import { beforeAll, describe, expect, it } from 'vitest'
import { cookieStore } from '../../../src/core/session/stores/cookie.ts'
import { memoryStore } from '../../../src/core/session/stores/memory.ts'
import { redisStore } from '../../../src/adapters/node/redis-store.ts'
import { redisSessionCache } from '../../../src/adapters/node/redis-cache.ts'
import { memoryRevocationList, type RevocationList } from '../../../src/core/session/revocations.ts'
import { redisRevocationList } from '../../../src/adapters/node/redis-coordination.ts'
import { makeSession, sleep, testStore } from '../../../src/testing/store-contract.ts'

const REDIS_URL = 'redis://127.0.0.1:6379'
// Every key this run writes starts with RUN, so a shared Redis is left as it was found.
const RUN = `bff-test-${crypto.randomUUID()}:`
const HOUR_MS = 3_600_000

function fakeClock() {
  let time = Date.now()
  return { now: () => time, advance: (ms: number) => void (time += ms) }
}

testStore('memory', async () => {
  const clock = fakeClock()
  return { store: memoryStore({ now: clock.now }), advance: clock.advance }
})

// The cookie store holds nothing: its refs carry the session, deletion goes to a revocation list.
testStore('cookie', async () => {
  const clock = fakeClock()
  return { store: cookieStore({ now: clock.now }), advance: clock.advance }
})

describe('cookieStore', () => {
  it('revokes the sessions of a subject created before deleteBySub, not later logins', async () => {
    const clock = fakeClock()
    const store = cookieStore({ now: clock.now })
    const nowSeconds = () => Math.floor(clock.now() / 1000)
    const old = makeSession({ sub: 'u1', createdAt: nowSeconds() - 60 })
    const oldRef = await store.set(old)
    await store.deleteBySub('u1')
    clock.advance(2000)
    const later = makeSession({ sub: 'u1', createdAt: nowSeconds() })
    expect(await store.get(oldRef)).toBeNull()
    expect(await store.get(await store.set(later))).not.toBeNull()
  })
})

/**
 * A revocation by `sub` (back-channel logout) made half a second into a second ends the sessions
 * created up to that millisecond and no later one: a fresh login right after it, in the same
 * second, is not refused. With `idp`, the same for that IdP's sessions.
 */
async function expectMillisecondBoundary(
  make: (now: () => number) => RevocationList,
  idp?: string
) {
  let time = Math.floor(Date.now() / 1000) * 1000 + 500
  const list = make(() => time)
  const sub = `user-${crypto.randomUUID()}`
  const at = (ms: number) =>
    makeSession({ sub, idp, createdAt: Math.floor(ms / 1000), createdAtMs: ms })
  const before = at(time - 1)
  const same = at(time)
  await list.revokeSub(sub, Math.floor(time / 1000) + 3600, idp)
  time += 1
  const after = at(time)
  expect(await list.isRevoked(before)).toBe(true)
  expect(await list.isRevoked(same)).toBe(true)
  expect(await list.isRevoked(after)).toBe(false)
  // A session sealed before createdAtMs existed still counts from the start of its second.
  const older = makeSession({ sub, idp, createdAt: Math.floor(time / 1000) })
  expect(await list.isRevoked(older)).toBe(true)
}

/**
 * An IdP's revocations: a sid or sub of `a` revoked ends `a`'s sessions and those with no recorded
 * idp, never `b`'s with the same sid and sub; one without idp ends all three.
 */
async function expectPerIdp(make: (now: () => number) => RevocationList) {
  let time = Date.now()
  const list = make(() => time)
  for (const by of ['sid', 'sub'] as const) {
    const sid = crypto.randomUUID()
    const sub = `user-${crypto.randomUUID()}`
    const created = { createdAt: Math.floor(time / 1000), createdAtMs: time }
    const [a, b, none] = [
      makeSession({ sid, sub, idp: 'a', ...created }),
      makeSession({ sid, sub, idp: 'b', ...created }),
      makeSession({ sid, sub, ...created }),
    ]
    time += 1
    const until = Math.floor(time / 1000) + 3600
    const revoke = (idp?: string) =>
      by === 'sid' ? list.revokeSid(sid, until, idp) : list.revokeSub(sub, until, idp)
    await revoke('a')
    expect([await list.isRevoked(a), await list.isRevoked(b), await list.isRevoked(none)]).toEqual([
      true,
      false,
      true,
    ])
    await revoke()
    expect(await list.isRevoked(b)).toBe(true)
  }
}

describe('revocation lists: a sub revoked at T ends sessions created up to T, not T + 1 ms', () => {
  it('memory', async () => {
    await expectMillisecondBoundary((now) => memoryRevocationList(now))
    await expectMillisecondBoundary((now) => memoryRevocationList(now), 'a')
  })

  it('redis', async () => {
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
    try {
      const make = (now: () => number) =>
        redisRevocationList(redis, { prefix: `${RUN}revocations:`, now })
      await expectMillisecondBoundary(make)
      await expectMillisecondBoundary(make, 'a')
    } finally {
      await redis.quit()
    }
  })
})

describe("revocation lists: an IdP's revocation ends its sessions and those with no idp only", () => {
  it('memory', async () => {
    await expectPerIdp((now) => memoryRevocationList(now))
  })

  it('memory: forgets a revocation past its keep-until, keeps the others, and takes new ones', async () => {
    let time = Date.now()
    const list = memoryRevocationList(() => time)
    const created = { createdAt: Math.floor(time / 1000), createdAtMs: time }
    const short = makeSession({ sid: 'short', sub: 'u-short', idp: 'a', ...created })
    const long = makeSession({ sid: 'long', sub: 'u-long', idp: 'a', ...created })
    time += 1
    const seconds = Math.floor(time / 1000)
    await list.revokeSid('short', seconds + 10, 'a')
    await list.revokeSub('u-short', seconds + 10)
    await list.revokeSid('long', seconds + 3600, 'a')
    expect([await list.isRevoked(short), await list.isRevoked(long)]).toEqual([true, true])
    time += 60_000
    // The clean-up runs every 256 writes.
    for (let i = 0; i < 256; i++) await list.revokeSession(`filler-${i}`, seconds + 3600)
    expect([await list.isRevoked(short), await list.isRevoked(long)]).toEqual([false, true])
    const later = makeSession({ sid: 'short', sub: 'u-short', idp: 'a', ...created })
    await list.revokeSub('u-short', seconds + 3600, 'a')
    expect(await list.isRevoked(later)).toBe(true)
  })

  it('redis', async () => {
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
    await redis.connect()
    try {
      await expectPerIdp((now) => redisRevocationList(redis, { prefix: `${RUN}per-idp:`, now }))
      // Revocations stored before IdPs were told apart (plain keys) still end every session.
      const sub = `user-${crypto.randomUUID()}`
      await redis.set(`${RUN}per-idp:revoked:sub:${sub}`, String(Date.now()), 'PX', 60_000)
      const list = redisRevocationList(redis, { prefix: `${RUN}per-idp:` })
      const old = makeSession({ sub, idp: 'a', createdAtMs: Date.now() - 1000 })
      expect(await list.isRevoked(old)).toBe(true)
    } finally {
      await redis.quit()
    }
  })
})

describe('memoryStore', () => {
  it('evicts the session written least recently once full', async () => {
    const store = memoryStore({ maxSessions: 3 })
    const [a, b, c, d] = [makeSession(), makeSession(), makeSession(), makeSession()]
    const [aRef, bRef, cRef] = [await store.set(a), await store.set(b), await store.set(c)]
    // A rewrite (a token refresh) makes `a` the most recent, so `b` goes first.
    const a2 = { ...a, generation: 2 }
    await store.set(a2)
    const dRef = await store.set(d)
    expect(await store.get(bRef)).toBeNull()
    expect(await store.get(aRef)).toEqual(a2)
    expect(await store.get(cRef)).toEqual(c)
    expect(await store.get(dRef)).toEqual(d)
  })

  it('evicts expired sessions before live ones', async () => {
    const clock = fakeClock()
    const store = memoryStore({ now: clock.now, maxSessions: 2 })
    const soon = makeSession({ expiresAt: Math.floor(clock.now() / 1000) + 10 })
    const later = makeSession()
    await store.set(soon)
    const laterRef = await store.set(later)
    clock.advance(12_000)
    const next = makeSession()
    const nextRef = await store.set(next)
    expect(await store.get(laterRef)).toEqual(later)
    expect(await store.get(nextRef)).toEqual(next)
  })

  it('stays within its bound under a flood of sessions', async () => {
    const store = memoryStore({ maxSessions: 100 })
    const refs = []
    for (let i = 0; i < 1_000; i++) refs.push(await store.set(makeSession({ sub: `flood-${i}` })))
    const live = await Promise.all(refs.map((ref) => store.get(ref)))
    expect(live.filter(Boolean)).toHaveLength(100)
    expect(live.slice(-100).every(Boolean)).toBe(true)
  })

  it("bounds one user's sessions: 1000 logins of one sub evict nobody else", async () => {
    const store = memoryStore({ maxSessions: 100 })
    const others = [makeSession({ sub: 'bob' }), makeSession({ sub: 'carol' })]
    const otherRefs = await Promise.all(others.map((session) => store.set(session)))
    const refs = []
    for (let i = 0; i < 1_000; i++) refs.push(await store.set(makeSession({ sub: 'looping' })))
    for (const [i, ref] of otherRefs.entries()) expect(await store.get(ref)).toEqual(others[i])
    const live = await Promise.all(refs.map((ref) => store.get(ref)))
    // The newest 50 (the default) of the looping user are kept, their oldest went first.
    expect(live.filter(Boolean)).toHaveLength(50)
    expect(live.slice(-50).every(Boolean)).toBe(true)
    expect(await store.listBySub('looping')).toHaveLength(50)
    expect(await store.deleteBySub('looping')).toBe(50)
  })

  it("bounds a user per IdP: one sub looping at IdP a evicts none of the same sub's at b", async () => {
    const store = memoryStore({ maxSessionsPerUser: 3 })
    const atB = [makeSession({ sub: 'same', idp: 'b' }), makeSession({ sub: 'same', idp: 'b' })]
    const bRefs = await Promise.all(atB.map((session) => store.set(session)))
    const aRefs = []
    for (let i = 0; i < 10; i++) aRefs.push(await store.set(makeSession({ sub: 'same', idp: 'a' })))
    for (const [i, ref] of bRefs.entries()) expect(await store.get(ref)).toEqual(atB[i])
    const liveA = await Promise.all(aRefs.map((ref) => store.get(ref)))
    expect(liveA.filter(Boolean)).toHaveLength(3)
    expect(liveA.slice(-3).every(Boolean)).toBe(true)
    expect(await store.listBySub('same', 'a')).toHaveLength(3)
  })

  it('takes maxSessionsPerUser as an option, and a rewrite makes a session the newest', async () => {
    const store = memoryStore({ maxSessionsPerUser: 2 })
    const [a, b, c] = [1, 2, 3].map(() => makeSession({ sub: 'dana' }))
    const [aRef, bRef] = [await store.set(a!), await store.set(b!)]
    await store.set({ ...a!, generation: 2 })
    const cRef = await store.set(c!)
    expect(await store.get(bRef)).toBeNull()
    expect(await store.get(aRef)).not.toBeNull()
    expect(await store.get(cRef)).not.toBeNull()
    expect(() => memoryStore({ maxSessionsPerUser: 0 })).toThrow(
      '"maxSessionsPerUser" must be a positive integer'
    )
  })

  it('finds a rewritten session by its sid and sub, and by its new ones once they change', async () => {
    const store = memoryStore()
    const session = makeSession({ sub: 'erin', sid: 'sid-1' })
    const other = makeSession({ sub: 'erin', sid: 'sid-2' })
    const ref = await store.set(session)
    const otherRef = await store.set(other)
    // Rewrites that keep the sid and sub (slides), then one that changes both.
    for (let i = 1; i <= 3; i++) {
      await store.set({ ...session, expiresAt: session.expiresAt + i, generation: i })
    }
    expect(await store.deleteBySid('sid-9')).toBe(0)
    expect((await store.listBySub('erin')).map((s) => s.id).sort()).toEqual(
      [session.id, other.id].sort()
    )
    await store.set({ ...session, sid: 'sid-3', sub: 'frank', generation: 4 })
    expect(await store.deleteBySid('sid-1')).toBe(0)
    expect((await store.listBySub('erin')).map((s) => s.id)).toEqual([other.id])
    expect((await store.listBySub('frank')).map((s) => s.id)).toEqual([session.id])
    expect(await store.deleteBySid('sid-3')).toBe(1)
    expect(await store.get(ref)).toBeNull()
    expect(await store.deleteBySub('erin')).toBe(1)
    expect(await store.get(otherRef)).toBeNull()
  })

  it('drops a session rewritten as already expired from its indexes too', async () => {
    const clock = fakeClock()
    const store = memoryStore({ now: clock.now })
    const session = makeSession({ sub: 'gus', sid: 'sid-g' })
    await store.set(session)
    await store.set({ ...session, expiresAt: Math.floor(clock.now() / 1000) - 1 })
    expect(await store.listBySub('gus')).toEqual([])
    expect(await store.deleteBySid('sid-g')).toBe(0)
  })

  it('keeps its copy apart from the session it was given, on a rewrite too', async () => {
    const store = memoryStore()
    const session = makeSession()
    const ref = await store.set(session)
    const slid = { ...(await store.get(ref))!, expiresAt: session.expiresAt + 60 }
    await store.set(slid)
    ;(slid.claims as { groups: string[] }).groups.push('root')
    slid.expiresAt = 0
    const stored = (await store.get(ref))!
    expect(stored.expiresAt).toBe(session.expiresAt + 60)
    expect(stored.claims).toEqual(session.claims)
  })

  it('ignores refs that carry a session instead of an id', async () => {
    const store = memoryStore()
    const session = makeSession()
    await store.set(session)
    expect(await store.get({ session })).toBeNull()
  })

  it('rejects bad options when created', () => {
    expect(() => memoryStore({ maxSessions: 0 })).toThrow(
      '"maxSessions" must be a positive integer'
    )
    expect(() => memoryStore({ maxSessions: 1.5 })).toThrow('"maxSessions"')
  })
})

describe('redis', () => {
  // The file's RUN: the keys of the revocation test above are removed with these.
  const test = useTestRedis(RUN)
  let redis: Redis
  beforeAll(() => {
    redis = test.redis()
  })

  testStore('redis', async () => ({ store: redisStore(redis, { prefix: `${RUN}contract:` }) }))

  // The cookie store as Node's cluster builds it: revocations in Redis, per IdP when scoped.
  testStore('cookie with Redis revocations', async () => {
    const clock = fakeClock()
    const revocations = redisRevocationList(redis, { prefix: `${RUN}cookie:`, now: clock.now })
    return { store: cookieStore({ now: clock.now, revocations }), advance: clock.advance }
  })

  // The same contract with the in-process cache Node's server uses: it must not change an answer.
  testStore('redis, cached', async () => {
    const prefix = `${RUN}cached:`
    const cache = redisSessionCache(redis.duplicate({ autoResubscribe: false }), {
      keyPrefix: `${prefix}session:`,
    })
    while (!cache.active) await sleep(5)
    return { store: redisStore(redis, { prefix, cache }), cleanup: () => cache.close() }
  })

  describe('redisStore', () => {
    const prefix = `${RUN}own:`
    const pttl = (key: string) => redis.pttl(`${prefix}${key}`)

    it('stores the session as JSON that expires with the session', async () => {
      const store = redisStore(redis, { prefix })
      const session = makeSession()
      await store.set(session)
      expect(JSON.parse((await redis.get(`${prefix}session:${session.id}`))!)).toEqual(session)
      const expected = session.expiresAt * 1000 - Date.now()
      const ttl = await pttl(`session:${session.id}`)
      expect(ttl).toBeGreaterThan(expected - 5_000)
      // A few ms of slack: PX is rounded up, and Redis and this process read their clocks apart.
      expect(ttl).toBeLessThanOrEqual(expected + 20)
    })

    it('expires index sets no sooner than their longest-lived member', async () => {
      const store = redisStore(redis, { prefix })
      const sub = `user-${crypto.randomUUID()}`
      const inAnHour = makeSession({ sub })
      await store.set(inAnHour)
      for (const key of [`sid:${inAnHour.sid}`, `sub:${sub}`]) {
        const ttl = await pttl(key)
        expect(ttl).toBeGreaterThan(HOUR_MS - 5_000)
        expect(ttl).toBeLessThanOrEqual(HOUR_MS)
      }

      await store.set(makeSession({ sub, expiresAt: inAnHour.expiresAt + 3600 }))
      expect(await pttl(`sub:${sub}`)).toBeGreaterThan(2 * HOUR_MS - 5_000)
      // A shorter-lived member must not shorten the set.
      await store.set(makeSession({ sub, expiresAt: inAnHour.expiresAt - 3000 }))
      expect(await pttl(`sub:${sub}`)).toBeGreaterThan(2 * HOUR_MS - 5_000)
      expect(await redis.scard(`${prefix}sub:${sub}`)).toBe(3)
    })

    it('lets Redis drop expired sessions and prunes them from indexes', async () => {
      // The store's clock runs an hour minus 200 ms ahead, so an hour-long session gets PX ≈ 200.
      const store = redisStore(redis, { prefix, now: () => Date.now() + HOUR_MS - 200 })
      const sub = `user-${crypto.randomUUID()}`
      const old = makeSession({ sub })
      await store.set(old)
      expect(await pttl(`session:${old.id}`)).toBeLessThanOrEqual(200)
      await sleep(300)
      expect(await redis.exists(`${prefix}session:${old.id}`)).toBe(0)

      const fresh = makeSession({ sub })
      await redisStore(redis, { prefix }).set(fresh)
      expect(await redis.smembers(`${prefix}sub:${sub}`)).toEqual([fresh.id])
    })

    it('writes nothing for a session already expired', async () => {
      const store = redisStore(redis, { prefix })
      const session = makeSession({ expiresAt: Math.floor(Date.now() / 1000) - 1 })
      await store.set(session)
      const keys = [`session:${session.id}`, `sid:${session.sid}`, `sub:${session.sub}`]
      expect(await redis.exists(...keys.map((key) => `${prefix}${key}`))).toBe(0)
    })

    it('removes a deleted session from its indexes', async () => {
      const store = redisStore(redis, { prefix })
      const gone = makeSession()
      const kept = makeSession({ sub: gone.sub })
      await store.set(gone)
      await store.set(kept)
      await store.delete(gone)
      expect(await redis.smembers(`${prefix}sub:${gone.sub}`)).toEqual([kept.id])
      expect(await redis.exists(`${prefix}sid:${gone.sid}`)).toBe(0)
      expect(await store.deleteBySub(gone.sub)).toBe(1)
      expect(await redis.exists(`${prefix}sub:${gone.sub}`, `${prefix}sid:${kept.sid}`)).toBe(0)
    })

    it("keeps another IdP's sessions in the indexes it ends one IdP's sessions from", async () => {
      const store = redisStore(redis, { prefix })
      const sid = crypto.randomUUID()
      const sub = `user-${crypto.randomUUID()}`
      const [a, b] = [makeSession({ sid, sub, idp: 'a' }), makeSession({ sid, sub, idp: 'b' })]
      await store.set(a)
      await store.set(b)
      expect(await store.deleteBySub(sub, 'a')).toBe(1)
      expect(await redis.smembers(`${prefix}sub:${sub}`)).toEqual([b.id])
      expect(await redis.smembers(`${prefix}sid:${sid}`)).toEqual([b.id])
      // Still found by its sid after its sub index was worked through.
      expect(await store.deleteBySid(sid, 'b')).toBe(1)
      expect(await redis.exists(`${prefix}sub:${sub}`, `${prefix}sid:${sid}`)).toBe(0)
    })

    it('works with a client that has a keyPrefix of its own', async () => {
      const prefixed = new Redis(REDIS_URL, { keyPrefix: `${RUN}kp:`, maxRetriesPerRequest: 1 })
      try {
        const store = redisStore(prefixed, { prefix: 'bff:' })
        const session = makeSession()
        const ref = await store.set(session)
        expect(await redis.exists(`${RUN}kp:bff:session:${session.id}`)).toBe(1)
        expect(await store.deleteBySub(session.sub)).toBe(1)
        expect(await store.get(ref)).toBeNull()
        expect(await redis.exists(`${RUN}kp:bff:session:${session.id}`)).toBe(0)
      } finally {
        await prefixed.quit()
      }
    })

    it('ignores refs that carry a session instead of an id', async () => {
      const store = redisStore(redis, { prefix })
      const session = makeSession()
      await store.set(session)
      expect(await store.get({ session })).toBeNull()
    })

    it('rejects bad arguments when created', () => {
      expect(() => redisStore(undefined as unknown as Redis)).toThrow('"redis"')
      expect(() => redisStore(redis, { prefix: 1 as unknown as string })).toThrow('"prefix"')
    })

    it('ping rejects within ~1 s when Redis is unreachable, whatever the client retries', async () => {
      // The worst client for a health check: it queues commands and reconnects forever.
      const down = new Redis('redis://127.0.0.1:1', {
        lazyConnect: true,
        maxRetriesPerRequest: null,
        enableOfflineQueue: true,
        retryStrategy: () => 50,
      })
      down.on('error', () => {})
      try {
        const started = performance.now()
        await expect(redisStore(down).ping()).rejects.toThrow(/PING/)
        expect(performance.now() - started).toBeLessThan(1_500)
      } finally {
        down.disconnect()
      }
    })
  })
})
