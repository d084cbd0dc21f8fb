import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { copyValue, copyWithStringsOf } from '../../../src/core/session/copy.ts'

describe('copyValue', () => {
  it('gives what structuredClone gives for any JSON value (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(copyValue(value)).toStrictEqual(structuredClone(value))
      }),
      { numRuns: 1000 }
    )
  })

  it('copies every object and array: editing the copy leaves the original alone', () => {
    const original = { claims: { groups: ['a'], address: { country: 'NL' } }, n: 1 }
    const copy = copyValue(original)
    copy.claims.groups.push('root')
    copy.claims.address.country = 'XX'
    copy.n = 2
    expect(original).toEqual({ claims: { groups: ['a'], address: { country: 'NL' } }, n: 1 })
  })

  it('keeps an own "__proto__" key a property, as structuredClone does', () => {
    const parsed = JSON.parse('{"__proto__": {"admin": true}, "a": 1}') as Record<string, unknown>
    const copy = copyValue(parsed)
    expect(Object.getPrototypeOf(copy)).toBe(Object.prototype)
    expect((copy as { admin?: boolean }).admin).toBeUndefined()
    expect(Object.keys(copy)).toEqual(['__proto__', 'a'])
    expect(copy).toStrictEqual(structuredClone(parsed))
  })

  it('hands what is not plain JSON to structuredClone', () => {
    const date = new Date(0)
    const value = {
      when: date,
      map: new Map([[1, 2]]),
      bare: Object.assign(Object.create(null), { x: 1 }),
    }
    const copy = copyValue(value)
    expect(copy).toStrictEqual(structuredClone(value))
    expect(copy.when).not.toBe(date)
    expect(copy.when).toBeInstanceOf(Date)
    expect(() => copyValue({ f: () => 1 })).toThrow()
    expect(copyValue([1, , 3])).toStrictEqual(structuredClone([1, , 3]))
  })
})

describe('copyWithStringsOf', () => {
  it('gives what structuredClone gives when the strings are the same (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        // The same strings at the same places: a copy of the value itself, but for an own
        // "__proto__" key anywhere (JSON.parse makes one), which is left to structuredClone.
        const copy = copyWithStringsOf(value, structuredClone(value))
        if (JSON.stringify(value).includes('"__proto__":')) expect(copy).toBeUndefined()
        else expect(copy).toStrictEqual(structuredClone(value))
      }),
      { numRuns: 5000 }
    )
  })

  it('answers undefined when any string differs from the one at its place, however deep', () => {
    const previous = { id: 'a', expiresAt: 1, claims: { groups: ['x', 'y'] } }
    expect(copyWithStringsOf({ ...previous, expiresAt: 2 }, previous)).toEqual({
      ...previous,
      expiresAt: 2,
    })
    expect(copyWithStringsOf({ ...previous, id: 'b' }, previous)).toBeUndefined()
    expect(copyWithStringsOf({ ...previous, claims: { groups: ['x', 'z'] } }, previous)).toBe(
      undefined
    )
    // A string where there was none, or where there was a number or an object.
    expect(copyWithStringsOf({ ...previous, more: 'new' }, previous)).toBeUndefined()
    expect(copyWithStringsOf({ ...previous, expiresAt: '1' }, previous)).toBeUndefined()
    expect(copyWithStringsOf({ ...previous, claims: 'x' }, previous)).toBeUndefined()
  })

  it('copies every object and array: editing the copy leaves both originals alone', () => {
    const previous = { claims: { groups: ['a'] }, n: 1 }
    const value = { claims: { groups: ['a'] }, n: 2 }
    const copy = copyWithStringsOf(value, previous)!
    copy.claims.groups.push('root')
    copy.n = 3
    expect(value).toEqual({ claims: { groups: ['a'] }, n: 2 })
    expect(previous).toEqual({ claims: { groups: ['a'] }, n: 1 })
  })

  it('leaves anything but JSON-shaped values, and an own "__proto__", to structuredClone', () => {
    const when = new Date(0)
    expect(copyWithStringsOf({ when }, { when })).toBeUndefined()
    expect(copyWithStringsOf({ f: () => 1 }, {})).toBeUndefined()
    expect(copyWithStringsOf({ n: 1n }, { n: 1n })).toBeUndefined()
    const parsed = JSON.parse('{"__proto__": {"admin": true}}') as object
    expect(copyWithStringsOf(parsed, parsed)).toBeUndefined()
    // Not reached through a prototype: an inherited name is no string of the previous value's.
    expect(copyWithStringsOf({ toString: 'x' }, {})).toBeUndefined()
  })
})
