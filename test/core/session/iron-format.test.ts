/**
 * The seal text both iron implementations share (src/core/session/iron-format.ts): what it
 * refuses before any key is derived, and how, in iron's order; the MAC's text and the version it
 * finds; and the text it assembles reading back as it was written. web-iron.test.ts and
 * crypto.test.ts check the implementations built on it against iron-session.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  macBase,
  sealBase,
  sealParts,
  sealPassword,
  sealText,
  type SealParts,
  versionText,
} from '../../../src/core/session/iron-format.ts'

const NOW = 1_900_000_000_000
const SALT = 'ab'.repeat(32)
const HMAC_SALT = 'cd'.repeat(32)
const MAC = 'M'.repeat(43)

/** A well-formed seal with `parts` in place of its own. */
function seal(parts: Record<number, string> = {}, version = '~2') {
  const own = ['Fe26.2', '4242', SALT, 'aXY', 'ZGF0YQ', String(NOW + 60_000), HMAC_SALT, MAC]
  return own.map((part, i) => parts[i] ?? part).join('*') + version
}

afterEach(() => vi.restoreAllMocks())

describe('sealParts', () => {
  it('splits a seal into its eight parts, the text before the first `~`', () => {
    vi.spyOn(Date, 'now').mockReturnValue(NOW)
    const sealed = seal()
    expect(sealParts(sealed)).toEqual(sealed.slice(0, -2).split('*'))
    // A `*` after the `~` belongs to the version, not to the seal.
    expect(sealParts(`${sealed}*x~3`)).toEqual(sealed.slice(0, -2).split('*'))
    expect(sealParts(sealed.slice(0, -2))).toEqual(sealed.slice(0, -2).split('*'))
  })

  it('answers null (iron-session: `{}`) for any other number of parts', () => {
    const eight = seal().slice(0, -2)
    for (const input of [
      '',
      'garbage',
      '~2',
      '*'.repeat(6),
      eight.replace(/\*[^*]*$/, ''),
      `${eight}*x`,
    ]) {
      expect(sealParts(input), input).toBeNull()
      expect(sealParts(`${input}~2`), input).toBeNull()
    }
  })

  it('answers iron-session’s error for another prefix, before looking at the expiration', () => {
    expect(sealParts(seal({ 0: 'Fe26.1' }))).toBe('Wrong mac prefix')
    expect(sealParts(seal({ 0: '' }))).toBe('Wrong mac prefix')
    expect(sealParts(seal({ 0: 'Fe26.1', 5: '12x' }))).toBe('Wrong mac prefix')
    expect(sealParts(seal({ 0: 'Fe26.1', 5: '1' }))).toBe('Wrong mac prefix')
  })

  it('answers iron-session’s error for an expiration that is not digits', () => {
    for (const expiration of ['12x', '-1', ' 1', '1.5', '1e13', '0x10', 'Infinity']) {
      expect(sealParts(seal({ 5: expiration })), expiration).toBe('Invalid expiration')
    }
  })

  it('refuses a seal 60 s past its expiration, not before; none without one', () => {
    const at = (now: number, expiration: string) => {
      vi.spyOn(Date, 'now').mockReturnValue(now)
      return sealParts(seal({ 5: expiration }))
    }
    expect(at(NOW, String(NOW - 59_999))).not.toBeNull()
    expect(at(NOW, String(NOW - 60_000))).toBeNull()
    expect(at(NOW, '1')).toBeNull()
    expect(at(NOW, '0')).toBeNull()
    expect(at(NOW, `000${NOW}`)).not.toBeNull()
    expect(at(Number.MAX_SAFE_INTEGER, '')).not.toBeNull()
  })

  it('leaves every other part to the MAC: nothing is decoded before it', () => {
    vi.spyOn(Date, 'now').mockReturnValue(NOW)
    const odd = seal({ 1: '', 2: '', 3: 'not base64!', 4: '=AA+/', 6: '', 7: '' })
    expect(sealParts(odd)).toEqual(odd.slice(0, -2).split('*'))
  })
})

describe('the text around the parts', () => {
  it('the MAC covers the seal up to its MAC salt, as iron joins it', () => {
    for (const sealed of [seal(), seal({ 1: '', 2: '', 5: '' }), seal({}, ''), seal({}, '~1~2')]) {
      const parts = sealed.split('~')[0]!.split('*') as SealParts
      expect(macBase(sealed, parts)).toBe(parts.slice(0, 6).join('*'))
    }
  })

  it('the version is what follows the first `~`, if anything does', () => {
    const version = (sealed: string) =>
      versionText(sealed, sealed.split('~')[0]!.split('*') as SealParts)
    expect(version(seal())).toBe('2')
    expect(version(seal({}, ''))).toBeUndefined()
    expect(version(seal({}, '~'))).toBe('')
    expect(version(seal({}, '~1'))).toBe('1')
    expect(version(seal({}, '~2~3'))).toBe('2~3')
    expect(version(seal({ 7: '' }, '~2x'))).toBe('2x')
  })

  it('a seal’s password is its id’s own, `default` without one, never an inherited name', () => {
    const passwords = { '4242': 'p'.repeat(32), default: 'd'.repeat(32), empty: '' }
    const parts = (id: string) => seal({ 1: id }).slice(0, -2).split('*') as SealParts
    expect(sealPassword(passwords, parts('4242'))).toBe(passwords['4242'])
    expect(sealPassword(passwords, parts(''))).toBe(passwords.default)
    expect(sealPassword(passwords, parts('empty'))).toBe('')
    expect(sealPassword(passwords, parts('1'))).toBeUndefined()
    expect(sealPassword({ '4242': 'p' }, parts(''))).toBeUndefined()
    expect(sealPassword(passwords, parts('constructor'))).toBeNull()
    expect(sealPassword(passwords, parts('__proto__'))).toBeNull()
    expect(sealPassword(Object.create(passwords), parts('4242'))).toBeNull()
  })

  it('assembles a seal that reads back part for part, its expiration ttl from now', () => {
    vi.spyOn(Date, 'now').mockReturnValue(NOW)
    const base = sealBase('4242', SALT, 'aXY', 'ZGF0YQ', 60)
    const sealed = sealText(base, HMAC_SALT, MAC)
    expect(sealed).toBe(seal())
    const parts = sealParts(sealed) as SealParts
    expect(macBase(sealed, parts)).toBe(base)
    expect(versionText(sealed, parts)).toBe('2')
    expect(sealBase('4242', SALT, 'aXY', 'ZGF0YQ', 0)).toBe(`Fe26.2*4242*${SALT}*aXY*ZGF0YQ*`)
  })
})
