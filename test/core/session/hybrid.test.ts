/**
 * `cookie` mode with a server store behind it (hybridStore): which sessions go where, and what
 * happens as a session crosses the cookie budget in either direction.
 */
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import {
  CookieTooLargeError,
  maxInlineJsonBytes,
  writeChunkedCookie,
  type CookieBudget,
} from '../../../src/core/session/cookie.ts'
import { createSealer } from '../../../src/core/session/seal.ts'
import { cookieStore } from '../../../src/core/session/stores/cookie.ts'
import { hybridStore } from '../../../src/core/session/stores/hybrid.ts'
import { memoryStore } from '../../../src/core/session/stores/memory.ts'
import type { Session } from '../../../src/core/session/types.ts'
import { makeSession, testStore } from '../../../src/testing/store-contract.ts'

const MAX_INLINE = 4000

function stores() {
  const cookie = cookieStore()
  const server = memoryStore()
  return { cookie, server, hybrid: hybridStore({ cookie, server, maxInlineBytes: MAX_INLINE }) }
}

/** The same session with claims that make its JSON longer than the cookie may carry. */
function grown(session: Session, generation = session.generation + 1): Session {
  return { ...session, generation, claims: { ...session.claims, groups: 'g'.repeat(MAX_INLINE) } }
}

/** A hybrid store on one fake clock; `maxInlineBytes` 0 sends every session to the server half. */
function contractSubject(maxInlineBytes: number) {
  let time = Date.now()
  const now = () => time
  const hybrid = hybridStore({
    cookie: cookieStore({ now }),
    server: memoryStore({ now }),
    maxInlineBytes,
  })
  return { store: hybrid, advance: (ms: number) => void (time += ms) }
}

testStore('hybrid, sessions in the cookie', async () => contractSubject(MAX_INLINE))
testStore('hybrid, sessions on the server', async () => contractSubject(0))

describe('hybridStore', () => {
  it('keeps a small session in the cookie and a large one on the server', async () => {
    const { hybrid, server } = stores()
    const small = makeSession()
    expect(await hybrid.set(small)).toHaveProperty('session')
    const large = grown(makeSession())
    expect(await hybrid.set(large)).toEqual({ id: large.id })
    expect(await server.get({ id: large.id })).toEqual(large)
  })

  it('moves a session that outgrows the cookie on update to the server', async () => {
    const { hybrid, server } = stores()
    const session = makeSession()
    await hybrid.set(session)
    const large = grown(session)
    expect(await hybrid.update(large)).toEqual({ id: session.id })
    expect(await hybrid.get({ id: session.id })).toEqual(large)
    expect(await server.get({ id: session.id })).toEqual(large)
  })

  it('does not revive a logged-out session that grows as a slow request writes it', async () => {
    const { hybrid, server } = stores()
    const session = makeSession()
    await hybrid.set(session)
    await hybrid.delete(session)
    expect(await hybrid.update(grown(session))).toBeNull()
    expect(await server.get({ id: session.id })).toBeNull()
  })

  it('does not revive a session ended by sid (back-channel logout) as it grows', async () => {
    const { hybrid, server } = stores()
    const session = makeSession()
    await hybrid.set(session)
    await hybrid.deleteBySid(session.sid)
    expect(await hybrid.update(grown(session))).toBeNull()
    expect(await server.get({ id: session.id })).toBeNull()
  })

  it('does not let an older generation growing out of the cookie undo a newer one', async () => {
    const { hybrid, server } = stores()
    const session = makeSession()
    await hybrid.set(session)
    // Generation 3 was handed out in a cookie; a slow request now writes generation 2, grown.
    expect(await hybrid.update({ ...session, generation: 3 })).toHaveProperty('session')
    expect(await hybrid.update(grown(session, 2))).toBeNull()
    expect(await server.get({ id: session.id })).toBeNull()
  })

  it('refuses a write over a newer generation already on the server', async () => {
    const { hybrid, server } = stores()
    const session = grown(makeSession(), 3)
    await hybrid.set(session)
    expect(await hybrid.update(grown(session, 2))).toBeNull()
    expect((await server.get({ id: session.id }))?.generation).toBe(3)
  })

  it('does not let a slow, older, smaller write delete the newer generation on the server', async () => {
    const { hybrid, server } = stores()
    const session = makeSession()
    // Created large on the server at generation 3; a request still holding generation 2 (small)
    // finishes late and writes it back.
    await hybrid.set(grown(session, 3))
    expect(await hybrid.update({ ...session, generation: 2 })).toBeNull()
    expect((await server.get({ id: session.id }))?.generation).toBe(3)
  })

  it('moves a session that shrinks back into the cookie and leaves no copy on the server', async () => {
    const { hybrid, server } = stores()
    const large = grown(makeSession())
    await hybrid.set(large)
    const small = { ...large, claims: { name: 'Ada' }, generation: large.generation + 1 }
    expect(await hybrid.update(small)).toHaveProperty('session')
    expect(await server.get({ id: large.id })).toBeNull()
  })
})

describe('maxInlineJsonBytes', () => {
  // The longest cookie name and attributes the session cookie is written with.
  const attrs = { secure: true, sameSite: 'Strict', maxAge: 43_200 } as const
  const sealer = createSealer(['a-session-secret-of-thirty-two-chars!'])

  /** Writes a sealed session whose JSON is `jsonBytes` long as the session cookie would be. */
  async function write(budget: CookieBudget, jsonBytes: number): Promise<unknown> {
    const session = makeSession()
    const padding = jsonBytes - JSON.stringify({ session: { ...session, pad: '' } }).length
    const sealed = await sealer.seal({ session: { ...session, pad: 'p'.repeat(padding) } }, 43_200)
    let result: unknown
    const app = new Hono().get('/', (c) => {
      try {
        result = writeChunkedCookie(c, '__Host-bff', sealed, attrs, budget)
      } catch (err) {
        result = err
      }
      return c.text('ok')
    })
    await app.request('/')
    return result
  }

  it.each([
    { maxCookieBytes: 3584, maxTotalBytes: 8192 },
    { maxCookieBytes: 4096, maxTotalBytes: 4096 },
    { maxCookieBytes: 1024, maxTotalBytes: 8192 },
    // Eight lines of 512 bytes hold far less than the 8192 bytes the total allows.
    { maxCookieBytes: 512, maxTotalBytes: 8192 },
    { maxCookieBytes: 2048, maxTotalBytes: 4096 },
  ])('a session of the largest inline size fits the cookie budget %o', async (budget) => {
    const max = maxInlineJsonBytes(budget)
    expect(max).toBeGreaterThan(0)
    expect(await write(budget, max)).toEqual(expect.any(Number))
  })

  it('is not so cautious that sessions a third larger would have fitted', async () => {
    const budget = { maxCookieBytes: 3584, maxTotalBytes: 8192 }
    const max = maxInlineJsonBytes(budget)
    expect(await write(budget, Math.floor(max * 1.3))).toBeInstanceOf(CookieTooLargeError)
  })
})
