import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { BffError } from '../core/errors.ts'
import type { Session, SessionRef, SessionStore } from '../core/session/types.ts'
import { makeSession, randomId, sleep } from './sessions.ts'
import { testStoreIdps } from './store-contract-idps.ts'

export { makeSession, randomId, sleep }

export interface StoreUnderTest {
  store: SessionStore
  /** Moves the store's clock forward; without it, expiry is tested by really waiting. */
  advance?: (ms: number) => void
  cleanup?: () => Promise<void>
}

const nowSeconds = () => Math.floor(Date.now() / 1000)

/**
 * The contract every SessionStore meets, like lucia's `testAdapter`. Refs are only ever taken from
 * `set`, so a store whose refs carry the whole session (`cookie`) passes too; such a store cannot
 * count the sessions a `deleteBy*` ends, so counts are checked for the other kinds only.
 */
export function testStore(name: string, makeStore: () => Promise<StoreUnderTest>): void {
  describe(`SessionStore contract: ${name}`, () => {
    let subject: StoreUnderTest
    let store: SessionStore
    const counts = () => store.kind !== 'cookie'

    beforeEach(async () => {
      subject = await makeStore()
      store = subject.store
    })

    afterEach(async () => {
      await subject.cleanup?.()
    })

    async function setAll(...sessions: Session[]): Promise<SessionRef[]> {
      const refs: SessionRef[] = []
      for (const session of sessions) refs.push(await store.set(session))
      return refs
    }

    it('has a kind', () => {
      expect(store.kind).toMatch(/^[a-z-]+$/)
    })

    it('answers with what was set', async () => {
      const session = makeSession()
      const ref = await store.set(session)
      expect(await store.get(ref)).toEqual(session)
      // Reading does not consume the session.
      expect(await store.get(ref)).toEqual(session)
    })

    it('keeps optional fields absent when they were absent', async () => {
      const session = makeSession()
      delete session.idToken
      delete session.refreshToken
      const got = await store.get(await store.set(session))
      expect(got).toEqual(session)
      expect(got).not.toHaveProperty('refreshToken')
    })

    it('answers null for an unknown session', async () => {
      const session = makeSession()
      const ref = await store.set(session)
      await store.delete(session)
      expect(await store.get(ref)).toBeNull()
      // A ref of the same shape naming a session that never existed.
      if ('id' in ref) expect(await store.get({ ...ref, id: randomId() })).toBeNull()
    })

    it('replaces a session on a newer write', async () => {
      const first = makeSession()
      const firstRef = await store.set(first)
      const second: Session = {
        ...first,
        accessToken: randomId(48),
        refreshToken: randomId(48),
        accessTokenExpiresAt: first.accessTokenExpiresAt + 300,
        generation: 2,
      }
      const secondRef = await store.set(second)
      expect(await store.get(secondRef)).toEqual(second)
      // A ref by id names the session, not one version of it.
      if ('id' in firstRef) expect(await store.get(firstRef)).toEqual(second)
    })

    it('forgets a deleted session and only that one', async () => {
      const gone = makeSession()
      const kept = makeSession({ sid: gone.sid, sub: gone.sub })
      const [goneRef, keptRef] = await setAll(gone, kept)
      await store.delete(gone)
      expect(await store.get(goneRef!)).toBeNull()
      expect(await store.get(keptRef!)).toEqual(kept)
    })

    it('deletes an unknown session without complaint', async () => {
      await expect(store.delete(makeSession())).resolves.toBeUndefined()
    })

    it('answers null for a session already expired when set', async () => {
      const session = makeSession({ createdAt: nowSeconds() - 7200, expiresAt: nowSeconds() - 1 })
      const ref = await store.set(session)
      expect(await store.get(ref)).toBeNull()
    })

    it('answers null once a session expires', async () => {
      const { advance } = subject
      if (advance) {
        // Whole seconds, rounded down: 61 s ahead leaves the alive check below 1 to 2 s before the
        // expiry (with 60 s it was 0 to 1 s, and a slow RPC in between failed it now and then).
        const session = makeSession({ expiresAt: nowSeconds() + 61 })
        const ref = await store.set(session)
        advance(59_000)
        expect(await store.get(ref)).toEqual(session)
        // At least a second past the expiry: the store's clock may have started a little before
        // makeSession ran.
        advance(3_000)
        expect(await store.get(ref)).toBeNull()
      } else {
        // Whole seconds: ceil + 1 leaves between 1 and 2 s, enough to see it alive first.
        const expiresAt = Math.ceil(Date.now() / 1000) + 1
        const session = makeSession({ expiresAt })
        const ref = await store.set(session)
        expect(await store.get(ref)).toEqual(session)
        await sleep(expiresAt * 1000 - Date.now() + 150)
        expect(await store.get(ref)).toBeNull()
      }
    }, 5_000)

    it('keeps the sessions of one subject apart', async () => {
      const sub = `user-${crypto.randomUUID()}`
      const laptop = makeSession({ sub })
      const phone = makeSession({ sub })
      const [laptopRef, phoneRef] = await setAll(laptop, phone)
      expect(await store.get(laptopRef!)).toEqual(laptop)
      expect(await store.get(phoneRef!)).toEqual(phone)
      await store.delete(laptop)
      expect(await store.get(laptopRef!)).toBeNull()
      expect(await store.get(phoneRef!)).toEqual(phone)
    })

    it('deleteBySid ends exactly the sessions with that sid', async () => {
      const sid = crypto.randomUUID()
      const sub = `user-${crypto.randomUUID()}`
      const a = makeSession({ sid, sub })
      const b = makeSession({ sid, sub })
      const otherSid = makeSession({ sub })
      const stranger = makeSession()
      const [aRef, bRef, otherSidRef, strangerRef] = await setAll(a, b, otherSid, stranger)

      const count = await store.deleteBySid(sid)
      if (counts()) expect(count).toBe(2)
      expect(await store.get(aRef!)).toBeNull()
      expect(await store.get(bRef!)).toBeNull()
      expect(await store.get(otherSidRef!)).toEqual(otherSid)
      expect(await store.get(strangerRef!)).toEqual(stranger)

      const again = await store.deleteBySid(sid)
      if (counts()) expect(again).toBe(0)
    })

    it('deleteBySid of an unknown sid ends nothing', async () => {
      const session = makeSession()
      const ref = await store.set(session)
      const count = await store.deleteBySid(crypto.randomUUID())
      if (counts()) expect(count).toBe(0)
      expect(await store.get(ref)).toEqual(session)
    })

    it('deleteBySub ends every session of that subject and no other', async () => {
      const sub = `user-${crypto.randomUUID()}`
      const laptop = makeSession({ sub })
      const phone = makeSession({ sub })
      const bob = makeSession()
      const [laptopRef, phoneRef, bobRef] = await setAll(laptop, phone, bob)

      const count = await store.deleteBySub(sub)
      if (counts()) expect(count).toBe(2)
      expect(await store.get(laptopRef!)).toBeNull()
      expect(await store.get(phoneRef!)).toBeNull()
      expect(await store.get(bobRef!)).toEqual(bob)

      const again = await store.deleteBySub(sub)
      if (counts()) expect(again).toBe(0)
      if (counts()) expect(await store.deleteBySub(`user-${crypto.randomUUID()}`)).toBe(0)
    })

    it('deleteBy* follows a session whose sid changed on a rewrite', async () => {
      const before = makeSession()
      await store.set(before)
      const after: Session = { ...before, sid: crypto.randomUUID(), generation: 2 }
      const ref = await store.set(after)

      const staleCount = await store.deleteBySid(before.sid)
      if (counts()) expect(staleCount).toBe(0)
      expect(await store.get(ref)).toEqual(after)

      const count = await store.deleteBySid(after.sid)
      if (counts()) expect(count).toBe(1)
      expect(await store.get(ref)).toBeNull()
    })

    it('stores a copy: editing the object after set changes nothing', async () => {
      const session = makeSession()
      const expected = structuredClone(session)
      const ref = await store.set(session)
      session.accessToken = 'tampered'
      session.generation = 99
      ;(session.claims.address as Record<string, string>).country = 'XX'
      expect(await store.get(ref)).toEqual(expected)
    })

    it('answers a copy: editing what get returned changes nothing until set', async () => {
      const session = makeSession()
      const ref = await store.set(session)
      const got = (await store.get(ref))!
      got.accessToken = 'tampered'
      ;(got.claims.groups as string[]).push('root')
      expect(await store.get(ref)).toEqual(session)
    })

    // Never-backwards writes: `update` must not restore older tokens nor revive an ended session.
    it('update rewrites a live session with the same or a newer generation', async () => {
      const session = makeSession({ generation: 3 })
      await store.set(session)
      const touched = { ...session, expiresAt: session.expiresAt + 60 }
      const ref = await store.update(touched)
      expect(ref).not.toBeNull()
      expect(await store.get(ref!)).toEqual(touched)
      const newer = { ...touched, accessToken: 'newer', generation: 4 }
      expect(await store.get((await store.update(newer))!)).toEqual(newer)
    })

    it('update drops a write older than the newest generation written', async () => {
      const session = makeSession({ generation: 1 })
      const ref = await store.set(session)
      const fresh = { ...session, accessToken: 'fresh', generation: 2 }
      const freshRef = (await store.update(fresh))!
      expect(await store.update({ ...session, accessToken: 'stale', generation: 1 })).toBeNull()
      expect(await store.get(freshRef)).toEqual(fresh)
      // A ref by id names the session: it answers the newer tokens too. (A cookie ref is the
      // session itself; a cookie store refuses the stale write, it cannot recall a cookie.)
      if ('id' in ref) expect((await store.get(ref))!.accessToken).toBe('fresh')
    })

    it('update never revives a deleted session', async () => {
      const session = makeSession()
      const ref = await store.set(session)
      await store.delete(session)
      expect(await store.update({ ...session, generation: session.generation + 1 })).toBeNull()
      expect(await store.get(ref)).toBeNull()
    })

    it('update never revives a session ended by deleteBySid or deleteBySub', async () => {
      const bySid = makeSession()
      const bySub = makeSession()
      const [sidRef, subRef] = await setAll(bySid, bySub)
      await store.deleteBySid(bySid.sid)
      await store.deleteBySub(bySub.sub)
      expect(await store.update({ ...bySid, generation: 2 })).toBeNull()
      expect(await store.update({ ...bySub, generation: 2 })).toBeNull()
      expect(await store.get(sidRef!)).toBeNull()
      expect(await store.get(subRef!)).toBeNull()
    })

    it('update does not create a session that was never set', async () => {
      // A cookie store holds nothing to compare with: the cookie it answers is the session.
      if (!counts()) return
      const session = makeSession()
      expect(await store.update(session)).toBeNull()
      expect(await store.get({ id: session.id })).toBeNull()
    })

    it('listBySub answers the live sessions of a subject, or refuses with not_supported', async () => {
      const sub = `user-${crypto.randomUUID()}`
      const laptop = makeSession({ sub })
      const phone = makeSession({ sub })
      const gone = makeSession({ sub })
      const stranger = makeSession()
      await setAll(laptop, phone, gone, stranger)
      await store.delete(gone)
      if (!counts()) {
        // Sessions that live in browsers' cookies cannot be listed: 501, as the admin API answers.
        const refused = await store.listBySub(sub).then(
          () => null,
          (err: unknown) => err
        )
        expect(refused).toBeInstanceOf(BffError)
        expect(refused).toMatchObject({ status: 501, code: 'not_supported' })
        return
      }
      const listed = await store.listBySub(sub)
      const byId = (a: Session, b: Session) => a.id.localeCompare(b.id)
      expect([...listed].sort(byId)).toEqual([laptop, phone].sort(byId))
      expect(await store.listBySub(`user-${crypto.randomUUID()}`)).toEqual([])
      await store.deleteBySub(sub)
      expect(await store.listBySub(sub)).toEqual([])
    })

    testStoreIdps(() => store)

    it('ping resolves when the store is reachable', async () => {
      await expect(store.ping()).resolves.toBeUndefined()
    })
  })
}
