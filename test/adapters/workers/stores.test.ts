/**
 * The SessionStore contract suite against the `durable-object` store: the store's functions run
 * here in Node, the objects in workerd, reached by RPC through Miniflare's bindings. The objects'
 * clock is the test clock, so expiry is tested without waiting.
 */
import { afterAll, describe, expect, it } from 'vitest'
import type { SessionObjectEnv } from '../../../src/adapters/workers/bindings.ts'
import {
  durableObjectReplayGuard,
  durableObjectRevocations,
} from '../../../src/adapters/workers/coordination.ts'
import { durableObjectStore } from '../../../src/adapters/workers/session-store.ts'
import { cookieStore } from '../../../src/core/session/stores/cookie.ts'
import { makeSession, testStore } from '../../../src/testing/store-contract.ts'
import { freePort } from '../../helpers/upstream.ts'
import { startWorkerd, type Workerd } from './workerd.ts'

let offsetMs = 0
let running: Promise<Workerd> | undefined

/** One workerd for the file: settings only need to parse; no request reaches the IdP. */
function workerd(): Promise<Workerd> {
  running ??= freePort().then((port) =>
    startWorkerd({
      port,
      env: {
        BFF_ISSUER: 'http://127.0.0.1:9/',
        BFF_CLIENT_ID: 'contract',
        BFF_CLIENT_SECRET: 'contract',
        BFF_BASE_URL: 'http://127.0.0.1:9',
        BFF_SESSION_SECRET: 'c'.repeat(40),
      },
      clockOffsetMs: () => offsetMs,
    })
  )
  return running
}

async function env(): Promise<SessionObjectEnv> {
  return (await (await workerd()).bindings()) as unknown as SessionObjectEnv
}

afterAll(async () => {
  await (await running)?.close()
})

// Each test's clock starts at real time, as makeSession's sessions do.
testStore('durable-object (objects in workerd)', async () => {
  offsetMs = 0
  return { store: durableObjectStore(await env()), advance: (ms) => void (offsetMs += ms) }
})

// The cookie store as the Worker builds it: its revocations live in the same objects.
testStore('cookie with Durable Object revocations (objects in workerd)', async () => {
  const bindings = await env()
  offsetMs = 0
  const now = () => Date.now() + offsetMs
  return {
    store: cookieStore({ now, revocations: durableObjectRevocations(bindings) }),
    advance: (ms) => void (offsetMs += ms),
  }
})

describe('Durable Object lists', () => {
  it('revokes a subject for every isolate, sessions created later excepted', async () => {
    const revocations = durableObjectRevocations(await env())
    const now = Math.floor((Date.now() + offsetMs) / 1000)
    const old = makeSession({ createdAt: now - 60 })
    expect(await revocations.isRevoked(old)).toBe(false)
    await revocations.revokeSub(old.sub, now + 3600)
    expect(await revocations.isRevoked(old)).toBe(true)
    offsetMs += 2000
    const later = makeSession({ sub: old.sub, createdAt: now + 2 })
    expect(await revocations.isRevoked(later)).toBe(false)
  })

  it('ends sessions created up to the revocation, to the millisecond: a login 1 ms later survives', async () => {
    const revocations = durableObjectRevocations(await env())
    const clock = () => Date.now() + offsetMs
    // Half a second into a second, so the whole exchange most likely stays within that second.
    offsetMs += 1500 - (clock() % 1000)
    const sub = `user-${crypto.randomUUID()}`
    const at = (ms: number) =>
      makeSession({ sub, createdAt: Math.floor(ms / 1000), createdAtMs: ms })
    const start = clock()
    const before = at(start - 1)
    await revocations.revokeSub(sub, Math.floor(start / 1000) + 3600)
    const after = at(clock() + 1)
    expect(await revocations.isRevoked(before)).toBe(true)
    expect(await revocations.isRevoked(after)).toBe(false)
  })

  it("revokes an IdP's sid or sub for its sessions and those with no idp, not another IdP's", async () => {
    const revocations = durableObjectRevocations(await env())
    for (const by of ['sid', 'sub'] as const) {
      const sid = crypto.randomUUID()
      const sub = `user-${crypto.randomUUID()}`
      const createdAtMs = Date.now() + offsetMs - 1
      const created = { createdAt: Math.floor(createdAtMs / 1000), createdAtMs }
      const [a, b, none] = [
        makeSession({ sid, sub, idp: 'a', ...created }),
        makeSession({ sid, sub, idp: 'b', ...created }),
        makeSession({ sid, sub, ...created }),
      ]
      const until = Math.floor(createdAtMs / 1000) + 3600
      const revoke = (idp?: string) =>
        by === 'sid'
          ? revocations.revokeSid(sid, until, idp)
          : revocations.revokeSub(sub, until, idp)
      await revoke('a')
      const revoked = () => Promise.all([a, b, none].map((s) => revocations.isRevoked(s)))
      expect(await revoked()).toEqual([true, false, true])
      await revoke()
      expect(await revoked()).toEqual([true, true, true])
    }
  })

  it('keeps the newest generation of a cookie session, never a lower one', async () => {
    const revocations = durableObjectRevocations(await env())
    const id = makeSession().id
    const until = Math.floor(Date.now() / 1000) + 3600
    expect(await revocations.latestGeneration!(id)).toBe(0)
    await revocations.recordGeneration!(id, 3, until)
    await revocations.recordGeneration!(id, 2, until)
    expect(await revocations.latestGeneration!(id)).toBe(3)
  })

  it('accepts a one-time key once until released', async () => {
    const guard = durableObjectReplayGuard(await env())
    const key = `jti:${crypto.randomUUID()}`
    expect(await guard.claim(key, 60)).toBe(true)
    expect(await guard.claim(key, 60)).toBe(false)
    await guard.release(key)
    expect(await guard.claim(key, 60)).toBe(true)
    offsetMs += 61_000
    expect(await guard.claim(key, 60)).toBe(true)
  })

  it('ends more sessions of a subject than one storage call deletes (128 keys)', async () => {
    const store = durableObjectStore(await env())
    const sub = `user-${crypto.randomUUID()}`
    const sessions = Array.from({ length: 130 }, () => makeSession({ sub }))
    await Promise.all(sessions.map((session) => store.set(session)))
    expect(await store.deleteBySub(sub)).toBe(130)
    expect(await store.get({ id: sessions[129]!.id })).toBeNull()
  }, 30_000)

  it("ends one IdP's sessions of a subject and keeps more of another's than one call stores", async () => {
    const store = durableObjectStore(await env())
    const sub = `user-${crypto.randomUUID()}`
    const atB = Array.from({ length: 130 }, () => makeSession({ sub, idp: 'b' }))
    const atA = [makeSession({ sub, idp: 'a' }), makeSession({ sub, idp: 'a' })]
    await Promise.all([...atB, ...atA].map((session) => store.set(session)))
    expect(await store.deleteBySub(sub, 'a')).toBe(2)
    expect(await store.get({ id: atA[0]!.id })).toBeNull()
    expect(await store.listBySub(sub, 'b')).toHaveLength(130)
    expect(await store.deleteBySub(sub, 'b')).toBe(130)
    expect(await store.get({ id: atB[129]!.id })).toBeNull()
  }, 30_000)

  it('lists the live sessions of a subject', async () => {
    const store = durableObjectStore(await env())
    const sub = `user-${crypto.randomUUID()}`
    const [a, b] = [makeSession({ sub }), makeSession({ sub })]
    await store.set(a)
    await store.set(b)
    await store.delete(a)
    expect(await store.listBySub(sub)).toEqual([b])
  })
})
