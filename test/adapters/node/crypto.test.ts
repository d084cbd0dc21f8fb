/**
 * node:crypto's iron (src/adapters/node/crypto.ts) against iron-session's own: each opens what the
 * other seals, both refuse the same tampered, expired and foreign seals, and the HMAC of the
 * session-id cookie is WebCrypto's.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { nodeHmac, nodeIron, nodeSealer } from '../../../src/adapters/node/crypto.ts'
import { createSealer, ironSession, type Iron } from '../../../src/core/session/seal.ts'
import { createSessionCookies } from '../../../src/core/session/session-cookie.ts'
import { makeSession, randomId } from '../../../src/testing/sessions.ts'

const SECRET = 'node-iron-secret-0123456789-abcdefghijklmnop'
const PASSWORD = { id: '4242', secret: SECRET }
const PASSWORDS = { '4242': SECRET }

/** Opens with `iron`, null for any refusal (thrown or answered). */
async function open(iron: Iron, sealed: string, passwords: Record<string, string> = PASSWORDS) {
  try {
    const data = await iron.unseal(sealed, passwords)
    return data && typeof data === 'object' && Object.keys(data).length ? data : null
  } catch {
    return null
  }
}

const IRONS = { node: nodeIron, 'iron-session': ironSession }

describe('node:crypto iron and iron-session', () => {
  for (const [maker, sealing] of Object.entries(IRONS)) {
    for (const [reader, opening] of Object.entries(IRONS)) {
      it(`${reader} opens what ${maker} seals`, async () => {
        await fc.assert(
          fc.asyncProperty(fc.dictionary(fc.string(), fc.jsonValue()), async (value) => {
            const data = { v: value, exp: 1 }
            const sealed = await sealing.seal(data, PASSWORD, 3600)
            expect(sealed).toMatch(
              /^Fe26\.2\*4242\*[0-9a-f]{64}\*[\w-]+\*[\w-]+\*\d+\*[0-9a-f]{64}\*[\w-]{43}~2$/
            )
            expect(await open(opening, sealed)).toEqual(JSON.parse(JSON.stringify(data)))
          }),
          { numRuns: 30 }
        )
      })
    }
  }

  it('both refuse the same tampered, expired and foreign seals', async () => {
    const session = { v: { session: makeSession() }, exp: 1 }
    const sealed = await nodeIron.seal(session, PASSWORD, 3600)
    const parts = sealed.slice(0, -2).split('*')
    const swap = (index: number, value: string) =>
      [...parts.slice(0, index), value, ...parts.slice(index + 1)].join('*') + '~2'
    const flip = (text: string, at: number) =>
      text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1)
    const expired = await ironSession.seal(session, PASSWORD, 1)
    const refused = [
      swap(4, flip(parts[4]!, 10)), // the ciphertext
      swap(3, flip(parts[3]!, 2)), // the IV
      swap(7, flip(parts[7]!, 5)), // the MAC
      swap(5, String(Number(parts[5]) + 1000)), // a later expiry
      swap(1, '1'), // another password id
      swap(0, 'Fe26.1'),
      sealed.slice(0, -2), // no version
      sealed.slice(0, -2) + '~1',
      parts.slice(0, 7).join('*') + '~2',
      (await createSealer(['another-secret-0123456789-abcdefghijklm']).seal({}, 60)) + '',
      'garbage',
      '',
    ]
    for (const bad of refused) {
      for (const [name, iron] of Object.entries(IRONS)) {
        expect(await open(iron, bad), `${name}: ${bad.slice(0, 40)}`).toBeNull()
      }
    }
    // Expired: iron's 60 s skew past the seal's own expiry (1 s here), then refused by both.
    const later = Date.now() + 62_000
    const realNow = Date.now
    Date.now = () => later
    try {
      for (const iron of Object.values(IRONS)) expect(await open(iron, expired)).toBeNull()
    } finally {
      Date.now = realNow
    }
  })

  it('a sealer on node:crypto reads and writes the same cookies as the default one', async () => {
    const ref = { session: makeSession() }
    const web = createSealer([SECRET, 'old-secret-0123456789-abcdefghijklmnop'])
    const node = nodeSealer([SECRET, 'old-secret-0123456789-abcdefghijklmnop'])
    expect(await node.unseal(await web.seal(ref, 600))).toEqual(ref)
    expect(await web.unseal(await node.seal(ref, 600))).toEqual(ref)
    const old = await createSealer(['old-secret-0123456789-abcdefghijklmnop']).seal(ref, 600)
    expect(await node.unseal(old)).toEqual(ref)
    expect(await node.isStale(old)).toBe(true)
  })

  it("the session-id cookie's HMAC is WebCrypto's", async () => {
    const id = randomId()
    const web = createSessionCookies(createSealer([SECRET]), [SECRET])
    const node = createSessionCookies(nodeSealer([SECRET]), [SECRET], { hmac: nodeHmac })
    const value = await web.idValue(id, 60)
    expect(await node.idValue(id, 60)).toBe(value)
    expect(await node.open(value)).toEqual({ ref: { id }, stale: false })
  })
})
