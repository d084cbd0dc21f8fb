import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { copyValue } from '../../../src/core/session/copy.ts'

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
