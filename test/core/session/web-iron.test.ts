/**
 * WebCrypto's iron for Workers (src/core/session/web-iron.ts) against iron-session's own and
 * node:crypto's: each opens what the others seal, seals are byte for byte iron-session's given
 * the same random bytes and clock, and every input, valid or not, gets iron-session's answer:
 * the same data, the same `{}` refusal, or a thrown error where it throws.
 */
import fc from 'fast-check'
import { createCipheriv, createHmac, pbkdf2Sync } from 'node:crypto'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { nodeIron } from '../../../src/adapters/node/crypto.ts'
import { createSealer, ironSession, type Iron } from '../../../src/core/session/seal.ts'
import { webIron } from '../../../src/core/session/web-iron.ts'
import { makeSession } from '../../../src/testing/sessions.ts'

const SECRET = 'web-iron-secret-0123456789-abcdefghijklmnop'
const PASSWORD = { id: '4242', secret: SECRET }
const PASSWORDS = { '4242': SECRET }
const IRONS = { web: webIron, 'iron-session': ironSession, node: nodeIron }

/** What opening answers: the data, or that it threw. */
async function outcome(iron: Iron, sealed: string, passwords: Record<string, string> = PASSWORDS) {
  try {
    return { data: await iron.unseal(sealed, passwords) }
  } catch {
    return { threw: true }
  }
}

const SALT = 'ab'.repeat(32)
const IV = Buffer.alloc(16, 1)

/** `data` encrypted as iron does, with `SALT` and `IV`. */
function encrypted(data: unknown): Buffer {
  const cipher = createCipheriv('aes-256-cbc', pbkdf2Sync(SECRET, SALT, 1, 32, 'sha1'), IV)
  return Buffer.concat([cipher.update(JSON.stringify(data), 'utf8'), cipher.final()])
}

/** A seal made by hand with `SECRET`: authentic whatever its parts hold (iron's MAC over them). */
function authentic(parts: { salt?: string; iv: string; encrypted: string }): string {
  const base = `Fe26.2*4242*${parts.salt ?? SALT}*${parts.iv}*${parts.encrypted}*`
  const hmacSalt = 'cd'.repeat(32)
  const key = pbkdf2Sync(SECRET, hmacSalt, 1, 32, 'sha1')
  return `${base}*${hmacSalt}*${createHmac('sha256', key).update(base).digest('base64url')}~2`
}

afterEach(() => vi.restoreAllMocks())

describe('webIron', () => {
  for (const [maker, sealing] of Object.entries(IRONS)) {
    it(`opens what ${maker} seals, and ${maker} opens what it seals`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.dictionary(fc.string(), fc.jsonValue()), async (value) => {
          const data = { v: value, exp: 1 }
          const expected = JSON.parse(JSON.stringify(data))
          const theirs = await sealing.seal(data, PASSWORD, 3600)
          expect(await webIron.unseal(theirs, PASSWORDS)).toEqual(expected)
          const ours = await webIron.seal(data, PASSWORD, 3600)
          expect(ours).toMatch(
            /^Fe26\.2\*4242\*[0-9a-f]{64}\*[\w-]{22}\*[\w-]+\*\d+\*[0-9a-f]{64}\*[\w-]{43}~2$/
          )
          expect(await sealing.unseal(ours, PASSWORDS)).toEqual(expected)
        }),
        { numRuns: 25 }
      )
    })
  }

  it('seals byte for byte as iron-session does, given the same random bytes and clock', async () => {
    const data = { v: { session: makeSession(), é: 'ünïcödé ✓' }, exp: 1 }
    const seals: string[] = []
    for (const iron of [ironSession, webIron]) {
      // The same stream of "random" bytes for both, and the same clock.
      let next = 7
      vi.spyOn(crypto, 'getRandomValues').mockImplementation((array: ArrayBufferView) => {
        const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength)
        for (let i = 0; i < bytes.length; i++) bytes[i] = next = (next * 31 + 11) % 251
        return array
      })
      vi.spyOn(Date, 'now').mockReturnValue(1_900_000_000_000)
      seals.push(await iron.seal(data, PASSWORD, 600))
      vi.restoreAllMocks()
    }
    expect(seals[1]).toBe(seals[0])
    expect(seals[0]).toContain('*1900000600000*')
  })

  it('answers every altered, truncated or foreign seal as iron-session does', async () => {
    const session = { v: { session: makeSession() }, exp: 1 }
    const sealed = await ironSession.seal(session, PASSWORD, 3600)
    const parts = sealed.slice(0, -2).split('*')
    const swap = (index: number, value: string, version = '~2') =>
      [...parts.slice(0, index), value, ...parts.slice(index + 1)].join('*') + version
    const flip = (text: string, at: number) =>
      text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1)
    const cases: [string, string, Record<string, string>?][] = [
      ['valid', sealed],
      ['ciphertext altered', swap(4, flip(parts[4]!, 10))],
      ['IV altered', swap(3, flip(parts[3]!, 2))],
      ['MAC altered', swap(7, flip(parts[7]!, 5))],
      ['MAC shortened', swap(7, parts[7]!.slice(0, -1))],
      ['encryption salt altered', swap(2, flip(parts[2]!, 0))],
      ['MAC salt altered', swap(6, flip(parts[6]!, 0))],
      ['MAC salt empty', swap(6, '')],
      ['later expiry', swap(5, String(Number(parts[5]) + 1000))],
      ['expiry not a number', swap(5, '12x')],
      ['no expiry', swap(5, '')],
      ['another password id', swap(1, '1')],
      ['an inherited name as password id', swap(1, 'constructor')],
      ['no password id', swap(1, '')],
      ['wrong prefix', swap(0, 'Fe26.1')],
      ['no version', sealed.slice(0, -2)],
      ['version 1', sealed.slice(0, -2) + '~1'],
      ['version 2 with trailing text', sealed + 'x'],
      ['a second version part', sealed + '~3'],
      ['seven parts', parts.slice(0, 7).join('*') + '~2'],
      ['nine parts', sealed.slice(0, -2) + '*x~2'],
      ['wrong password', sealed, { '4242': 'another-secret-0123456789-abcdefghijklm' }],
      ['short password', sealed, { '4242': 'short' }],
      ['empty password', sealed, { '4242': '' }],
      ['the password under "default"', swap(1, ''), { default: SECRET }],
      [
        'another secret’s seal',
        await createSealer(['another-secret-0123456789-abcdefg']).seal({}, 60),
      ],
      ['garbage', 'garbage'],
      ['empty', ''],
    ]
    // Every truncation of a seal too.
    for (let end = 0; end < sealed.length; end += 7)
      cases.push([`cut at ${end}`, sealed.slice(0, end)])
    for (const [name, input, passwords] of cases) {
      const expected = await outcome(ironSession, input, passwords)
      expect(await outcome(webIron, input, passwords), name).toEqual(expected)
    }
    // The valid one opened; the forgeries did not.
    expect(await outcome(webIron, sealed)).toEqual({ data: JSON.parse(JSON.stringify(session)) })
    expect(await outcome(webIron, swap(7, flip(parts[7]!, 5)))).toEqual({ data: {} })
  })

  it('refuses an expired seal after iron’s 60 s allowance, as iron-session does', async () => {
    const sealed = await webIron.seal({ v: 1, exp: 1 }, PASSWORD, 1)
    const t = Date.now()
    vi.spyOn(Date, 'now').mockReturnValue(t + 50_000)
    expect(await webIron.unseal(sealed, PASSWORDS)).toEqual({ v: 1, exp: 1 })
    vi.spyOn(Date, 'now').mockReturnValue(t + 62_000)
    expect(await outcome(webIron, sealed)).toEqual({ data: {} })
    expect(await outcome(ironSession, sealed)).toEqual({ data: {} })
  })

  it('decodes even odd base64 in an authentic seal as iron does', async () => {
    // Only a holder of the secret can make these: iron never writes them. Both must still agree.
    const iv = IV.toString('base64url')
    const secret = encrypted({ v: 'odd', exp: 1 }).toString('base64url')
    const cases = [
      // Padded: iron reads `=` as padding, so these open.
      authentic({ iv: `${iv}==`, encrypted: `${secret}=` }),
      authentic({ iv, encrypted: `${secret}=` }),
      authentic({ iv, encrypted: secret }),
      authentic({ iv, encrypted: 'AAAA=AAA' }),
      authentic({ iv, encrypted: 'AAAAA' }),
      authentic({ iv, encrypted: 'AA+A' }),
      authentic({ iv: iv + '=', encrypted: 'AAAA' }),
      authentic({ iv, encrypted: 'AAAA', salt: '' }),
    ]
    for (const input of cases) {
      expect(await outcome(webIron, input), input).toEqual(await outcome(ironSession, input))
    }
    expect(await outcome(webIron, cases[0]!)).toEqual({ data: { v: 'odd', exp: 1 } })
  })

  it('prepares at start-up without random values (a Workers isolate refuses them there)', async () => {
    vi.resetModules()
    const fresh = (await import('../../../src/core/session/web-iron.ts')).webIron
    const random = vi.spyOn(crypto, 'getRandomValues')
    const derive = vi.spyOn(crypto.subtle, 'deriveKey')
    await fresh.prepare!([SECRET])
    expect(random).not.toHaveBeenCalled()
    // It did seal and open something: two keys for the seal, two for opening it.
    expect(derive).toHaveBeenCalledTimes(4)
    vi.restoreAllMocks()
    // And it leaves nothing in the way of real seals.
    const sealed = await fresh.seal({ v: 1, exp: 1 }, PASSWORD, 60)
    expect(await webIron.unseal(sealed, PASSWORDS)).toEqual({ v: 1, exp: 1 })
  })

  it('answers the same through the runtime’s own base64 (Uint8Array.fromBase64, as workerd’s)', async () => {
    // Node 20 has no Uint8Array.fromBase64/toBase64: stand-ins after the spec, for the options
    // webIron passes (base64url, no padding), so that the path workerd takes runs here too.
    const U8 = Uint8Array as unknown as Record<string, unknown>
    const proto = Uint8Array.prototype as unknown as Record<string, unknown>
    const calls = { from: 0, to: 0 }
    U8.fromBase64 = (text: string, options: { alphabet?: string }) => {
      calls.from++
      expect(options).toEqual({ alphabet: 'base64url' })
      if (!/^[\w-]*$/.test(text)) throw new SyntaxError('not base64url')
      return new Uint8Array(Buffer.from(text, 'base64url'))
    }
    proto.toBase64 = function (this: Uint8Array, options: object) {
      calls.to++
      expect(options).toEqual({ alphabet: 'base64url', omitPadding: true })
      return Buffer.from(this).toString('base64url')
    }
    try {
      vi.resetModules()
      const native = (await import('../../../src/core/session/web-iron.ts')).webIron
      const data = { v: { session: makeSession() }, exp: 1 }
      const ours = await native.seal(data, PASSWORD, 600)
      expect(await ironSession.unseal(ours, PASSWORDS)).toEqual(JSON.parse(JSON.stringify(data)))
      const theirs = await ironSession.seal(data, PASSWORD, 600)
      expect(await native.unseal(theirs, PASSWORDS)).toEqual(JSON.parse(JSON.stringify(data)))
      const odd = authentic({
        iv: `${IV.toString('base64url')}==`,
        encrypted: `${encrypted({ v: 1 }).toString('base64url')}=`,
      })
      expect(await outcome(native, odd)).toEqual(await outcome(ironSession, odd))
      expect(calls.from).toBeGreaterThan(0)
      expect(calls.to).toBeGreaterThan(0)
    } finally {
      delete U8.fromBase64
      delete proto.toBase64
      vi.resetModules()
    }
  })

  it('a sealer with it reads and writes the same cookies as the default one', async () => {
    const ref = { session: makeSession() }
    const old = 'old-secret-0123456789-abcdefghijklmnop'
    const web = createSealer([SECRET, old], { iron: webIron })
    const iron = createSealer([SECRET, old])
    expect(await web.unseal(await iron.seal(ref, 600))).toEqual(ref)
    expect(await iron.unseal(await web.seal(ref, 600))).toEqual(ref)
    const stale = await createSealer([old]).seal(ref, 600)
    expect(await web.unseal(stale)).toEqual(ref)
    expect(await web.isStale(stale)).toBe(true)
    expect(
      await createSealer(['another-secret-0123456789-abcdefg'], { iron: webIron }).unseal(
        await web.seal(ref, 600)
      )
    ).toBeNull()
  })
})
