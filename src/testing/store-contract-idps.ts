/**
 * The store contract's cases for several IdPs (part of `testStore`). A user is the pair (idp,
 * sub): `deleteBySid`, `deleteBySub` and `listBySub` with an `idp` reach that IdP's sessions and
 * those with no recorded idp (older sessions, ended rather than missed), never another IdP's. The
 * attack they fend off: IdP `b` (a back-channel logout token it signed, or an admin acting for
 * its users) naming a sub or sid that IdP `a` also issued, to log `a`'s user out.
 *
 * A store that cannot count or list (`cookie`) is held to what it can do: the sessions it ends
 * and keeps, and its 501 refusal to list.
 */
import { expect, it } from 'vitest'
import { BffError } from '../core/errors.ts'
import type { Session, SessionStore } from '../core/session/types.ts'
import { makeSession } from './sessions.ts'

const byId = (x: Session, y: Session) => x.id.localeCompare(y.id)
const sorted = (sessions: Session[]) => [...sessions].sort(byId)

export function testStoreIdps(current: () => SessionStore): void {
  const counts = () => current().kind !== 'cookie'

  /** One sub and one sid at IdPs `a` and `b` (another user at each), and their refs. */
  async function sameSubAtTwoIdps() {
    const store = current()
    const sid = crypto.randomUUID()
    const sub = `user-${crypto.randomUUID()}`
    const a = makeSession({ sid, sub, idp: 'a' })
    const b = makeSession({ sid, sub, idp: 'b' })
    const aRef = await store.set(a)
    const bRef = await store.set(b)
    return { store, sid, sub, a, b, aRef, bRef }
  }

  for (const by of ['sid', 'sub'] as const) {
    const deleteBy = (store: SessionStore, value: string, idp?: string) =>
      by === 'sid' ? store.deleteBySid(value, idp) : store.deleteBySub(value, idp)

    it(`deleteBy${by === 'sid' ? 'Sid' : 'Sub'} with an idp ends that IdP's sessions only`, async () => {
      const { store, a, b, aRef, bRef } = await sameSubAtTwoIdps()
      const count = await deleteBy(store, a[by], 'a')
      if (counts()) expect(count).toBe(1)
      expect(await store.get(aRef)).toBeNull()
      expect(await store.get(bRef)).toEqual(b)

      // Ended for good at `a`; `b`'s session goes on, and can still be rewritten.
      expect(await store.update({ ...a, generation: 2 })).toBeNull()
      const b2 = { ...b, accessToken: 'refreshed', generation: 2 }
      const b2Ref = (await store.update(b2))!
      expect(await store.get(b2Ref)).toEqual(b2)
      const again = await deleteBy(store, a[by], 'a')
      if (counts()) expect(again).toBe(0)
      expect(await store.get(b2Ref)).toEqual(b2)
      if (counts()) expect(await store.listBySub(b.sub)).toEqual([b2])
    })

    it(`deleteBy${by === 'sid' ? 'Sid' : 'Sub'} without an idp ends the sessions of every IdP`, async () => {
      const { store, a, aRef, bRef } = await sameSubAtTwoIdps()
      const stranger = makeSession({ idp: 'a' })
      const strangerRef = await store.set(stranger)
      const count = await deleteBy(store, a[by])
      if (counts()) expect(count).toBe(2)
      expect(await store.get(aRef)).toBeNull()
      expect(await store.get(bRef)).toBeNull()
      expect(await store.get(strangerRef)).toEqual(stranger)
    })

    it(`deleteBy${by === 'sid' ? 'Sid' : 'Sub'} with an idp ends a session with no recorded idp`, async () => {
      const { store, a, b, aRef, bRef } = await sameSubAtTwoIdps()
      const older = makeSession({ sid: a.sid, sub: a.sub })
      const olderRef = await store.set(older)
      // `b`'s logout ends the older session (its IdP is unknown) and not `a`'s.
      const count = await deleteBy(store, b[by], 'b')
      if (counts()) expect(count).toBe(2)
      expect(await store.get(olderRef)).toBeNull()
      expect(await store.get(bRef)).toBeNull()
      expect(await store.get(aRef)).toEqual(a)
      expect(await store.update({ ...older, generation: 2 })).toBeNull()
    })
  }

  it("listBySub with an idp lists that IdP's sessions and those with no recorded idp", async () => {
    const { store, sub, a, b } = await sameSubAtTwoIdps()
    const older = makeSession({ sub })
    await store.set(older)
    if (!counts()) {
      const refused = await store.listBySub(sub, 'a').then(
        () => null,
        (err: unknown) => err
      )
      expect(refused).toBeInstanceOf(BffError)
      expect(refused).toMatchObject({ status: 501, code: 'not_supported' })
      return
    }
    expect(sorted(await store.listBySub(sub, 'a'))).toEqual(sorted([a, older]))
    expect(sorted(await store.listBySub(sub, 'b'))).toEqual(sorted([b, older]))
    expect(await store.listBySub(sub, 'c')).toEqual([older])
    expect(sorted(await store.listBySub(sub))).toEqual(sorted([a, b, older]))
    await store.deleteBySub(sub, 'a')
    expect(await store.listBySub(sub, 'a')).toEqual([])
    expect(await store.listBySub(sub)).toEqual([b])
  })
}
