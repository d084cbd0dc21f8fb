/** What a step-up asks of a login, the address that asks it, and the check of the new ID token. */
import { describe, expect, it } from 'vitest'
import { stepUpLoginUrl } from '../../../src/core/policy/step-up.ts'
import {
  parseAcrValues,
  parseMaxAge,
  stepUpProblem,
} from '../../../src/core/policy/step-up-params.ts'

describe('stepUpLoginUrl', () => {
  it('names returnTo, the acr values space-separated and maxAge', () => {
    const url = stepUpLoginUrl('/orders?id=7', { acr: ['mfa', 'urn:loa:3'], maxAge: 300 })
    expect(url).toBe('/bff/login?returnTo=%2Forders%3Fid%3D7&acr=mfa+urn%3Aloa%3A3&maxAge=300')
    const query = new URL(url, 'http://x').searchParams
    expect([query.get('returnTo'), query.get('acr'), query.get('maxAge')]).toEqual([
      '/orders?id=7',
      'mfa urn:loa:3',
      '300',
    ])
    expect(stepUpLoginUrl('/', { maxAge: 0 })).toBe('/bff/login?returnTo=%2F&maxAge=0')
    expect(stepUpLoginUrl('/', { acr: ['mfa'] })).toBe('/bff/login?returnTo=%2F&acr=mfa')
  })
})

describe('parseAcrValues and parseMaxAge', () => {
  it('read what a login may ask for', () => {
    expect(parseAcrValues('mfa')).toEqual(['mfa'])
    expect(parseAcrValues(' mfa  urn:loa:2 mfa ')).toEqual(['mfa', 'urn:loa:2'])
    expect(parseAcrValues('a'.repeat(512))).toEqual(['a'.repeat(512)])
    expect(parseMaxAge('0')).toBe(0)
    expect(parseMaxAge('2147483647')).toBe(2147483647)
  })

  it('refuse anything else', () => {
    for (const text of ['', ' ', 'a"b', 'a\\b', 'a\tb', 'caf\u00e9', 'a'.repeat(513)]) {
      expect([text, parseAcrValues(text)]).toEqual([text, undefined])
    }
    expect(parseAcrValues(Array.from({ length: 11 }, (_, i) => `v${i}`).join(' '))).toBeUndefined()
    for (const text of ['', '-1', '+1', '1.0', '1e3', ' 1', '0x10', '2147483648', '99999999999']) {
      expect([text, parseMaxAge(text)]).toEqual([text, undefined])
    }
  })
})

describe('stepUpProblem', () => {
  const now = 1_700_000_000

  it('passes an ID token with an acr asked for and a recent enough auth_time', () => {
    expect(stepUpProblem({ acr: 'mfa', auth_time: now - 10 }, { acr: ['gold', 'mfa'] }, now)).toBe(
      undefined
    )
    expect(stepUpProblem({ auth_time: now - 300 }, { maxAge: 300 }, now)).toBeUndefined()
    // The usual 30 s of clock tolerance, both ways.
    expect(stepUpProblem({ auth_time: now - 330 }, { maxAge: 300 }, now)).toBeUndefined()
    expect(stepUpProblem({ auth_time: now + 30 }, { maxAge: 0 }, now)).toBeUndefined()
    expect(stepUpProblem({}, {}, now)).toBeUndefined()
  })

  it('says what falls short', () => {
    expect(stepUpProblem({ acr: 'pwd' }, { acr: ['mfa'] }, now)).toBe('acr_not_met')
    expect(stepUpProblem({}, { acr: ['mfa'] }, now)).toBe('acr_not_met')
    expect(stepUpProblem({ acr: ['mfa'] }, { acr: ['mfa'] }, now)).toBe('acr_not_met')
    expect(stepUpProblem({ acr: 'mfa' }, { acr: ['mfa'], maxAge: 60 }, now)).toBe(
      'auth_time_missing'
    )
    expect(stepUpProblem({ auth_time: String(now) }, { maxAge: 60 }, now)).toBe('auth_time_missing')
    expect(stepUpProblem({ auth_time: now - 331 }, { maxAge: 300 }, now)).toBe('auth_time_too_old')
    expect(stepUpProblem({ auth_time: now + 31 }, { maxAge: 300 }, now)).toBe('auth_time_in_future')
  })
})
