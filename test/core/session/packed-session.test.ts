/** The cookie store's packed session: lossless, smaller, and old cookies still open. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  packRef,
  packSession,
  unpackRef,
  unpackSession,
} from '../../../src/core/session/packed-session.ts'
import { createSealer } from '../../../src/core/session/seal.ts'
import { createSessionCookies } from '../../../src/core/session/session-cookie.ts'
import type { Session } from '../../../src/core/session/types.ts'
import { makeSession } from '../../../src/testing/sessions.ts'

const SECRET = 'pack-secret-0123456789-abcdefghijklmnop'

function loginLike(): Session {
  const session = makeSession({ idp: 'corp', scope: 'openid profile', accessTokenLifetime: 300 })
  const createdAtMs = session.createdAt * 1000 + 123
  return {
    ...session,
    createdAtMs,
    absoluteExpiresAt: session.createdAt + 43_200,
    claims: { ...session.claims, sub: session.sub, sid: session.sid, acr: 'mfa', auth_time: 1 },
    resourceTokens: { 'urn:a': { accessToken: 'rt', expiresAt: 1, lifetime: 60 } },
  }
}

describe('packSession', () => {
  it('gives back the very session, in fewer bytes', () => {
    const session = loginLike()
    const packed = packSession(session)
    expect(unpackSession(JSON.parse(JSON.stringify(packed)))).toEqual(session)
    expect(JSON.stringify(packed).length).toBeLessThan(JSON.stringify(session).length - 150)
  })

  it('keeps what differs from its duplicate: claims sub/sid of their own, a createdAt of its own', () => {
    const session = {
      ...loginLike(),
      claims: { sub: 'other', sid: 'other-sid', name: 'x' },
      createdAt: 5,
    }
    expect(unpackSession(JSON.parse(JSON.stringify(packSession(session))))).toEqual(session)
    const noSid = { ...loginLike(), claims: { sub: loginLike().sub } }
    noSid.claims.sub = noSid.sub
    expect(unpackSession(packSession(noSid)).claims).toEqual({ sub: noSid.sub })
    const ownSub = loginLike()
    ownSub.claims = { sub: 'other', sid: ownSub.sid, name: 'x' }
    const packed = JSON.parse(JSON.stringify(packSession(ownSub))) as Record<string, unknown>
    expect(packed.cd).toBe('d')
    expect(unpackSession(packed)).toEqual(ownSub)
  })

  it('restores claims with an own "__proto__" claim kept a claim', () => {
    const session = loginLike()
    session.claims = JSON.parse(
      `{"sub":"${session.sub}","sid":"${session.sid}","__proto__":{"polluted":true}}`
    ) as Record<string, unknown>
    const round = unpackSession(JSON.parse(JSON.stringify(packSession(session))))
    expect(Object.getPrototypeOf(round.claims)).toBe(Object.prototype)
    expect(Object.keys(round.claims)).toEqual(['sub', 'sid', '__proto__'])
    expect(round.claims.polluted).toBeUndefined()
  })

  it('keeps an own "__proto__" field as a field, never as the prototype', () => {
    const session = JSON.parse(
      JSON.stringify({ ...loginLike() }).replace(/^\{/, '{"__proto__":{"polluted":true},')
    ) as Session
    const round = unpackSession(JSON.parse(JSON.stringify(packSession(session))))
    expect(Object.getPrototypeOf(round)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(round, '__proto__')?.value).toEqual({ polluted: true })
    expect((round as unknown as Record<string, unknown>).polluted).toBeUndefined()
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(round).toEqual(JSON.parse(JSON.stringify(session)))
  })

  it('never loses a field it does not know, whatever its name', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.oneof(
            fc.constantFrom(
              'i',
              'cd',
              '_i',
              '__i',
              'e',
              'x',
              'claims2',
              'toString',
              'constructor',
              '_proto__'
            ),
            fc.string()
          ),
          fc.jsonValue()
        ),
        (extra) => {
          const session = { ...extra, ...loginLike() } as Session
          for (const [key, value] of Object.entries(extra)) {
            if (!(key in loginLike()) && key !== '__proto__') {
              ;(session as unknown as Record<string, unknown>)[key] = value
            }
          }
          const round = unpackSession(JSON.parse(JSON.stringify(packSession(session))))
          expect(round).toEqual(JSON.parse(JSON.stringify(session)))
        }
      )
    )
  })
})

describe('cookie-mode cookies', () => {
  it('seal the packed form, and open to the session', async () => {
    const sealer = createSealer([SECRET])
    const cookies = createSessionCookies(sealer, [SECRET])
    const session = loginLike()
    const packed = await sealer.seal(packRef({ session }), 3600)
    const plain = await sealer.seal({ session }, 3600)
    expect(packed.length).toBeLessThan(plain.length - 150)
    expect((await cookies.open(packed, { cache: true }))?.ref).toEqual({ session })
    // Again, from the sealer's memory: the same answer.
    expect((await cookies.open(packed, { cache: true }))?.ref).toEqual({ session })
  })

  it('of the older form (the session as it is) still open', async () => {
    const sealer = createSealer([SECRET])
    const session = loginLike()
    const old = await sealer.seal({ session }, 3600)
    expect(await createSessionCookies(sealer, [SECRET]).open(old)).toEqual({
      ref: { session },
      stale: false,
    })
    expect(unpackRef({ session })).toEqual({ session })
    expect(unpackRef(null)).toBeNull()
  })
})
