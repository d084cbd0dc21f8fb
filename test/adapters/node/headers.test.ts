/**
 * src/adapters/node/headers.ts: a Headers read lazily from Node's raw header lines must answer
 * every question exactly as a Headers built from the same lines does.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { RawHeaders, RecordHeaders } from '../../../src/adapters/node/headers.ts'

/** What node-server builds: a Headers from the raw lines, in order. */
function reference(raw: string[]): Headers {
  const pairs: [string, string][] = []
  for (let i = 0; i < raw.length; i += 2) pairs.push([raw[i]!, raw[i + 1]!])
  return new Headers(pairs)
}

const names = fc.constantFrom(
  'Cookie',
  'cookie',
  'X-CSRF',
  'x-csrf',
  'Accept',
  'X-Multi',
  'x-MULTI'
)
// Values as Node's parser hands them over: latin1 without controls, no surrounding whitespace.
const value = fc
  .string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)) })
  .filter((v) => !v.includes('\u007f'))
  .map((v) => v.trim())
const rawLines = fc
  .array(fc.tuple(names, value), { maxLength: 8 })
  .map((pairs) => pairs.flatMap(([n, v]) => [n, v]))

describe('RawHeaders', () => {
  it('reads like a Headers built from the same lines (property)', () => {
    fc.assert(
      fc.property(rawLines, (raw) => {
        const lazy = new RawHeaders(raw)
        const real = reference(raw)
        for (const name of ['cookie', 'COOKIE', 'x-csrf', 'x-multi', 'accept', 'absent']) {
          expect(lazy.get(name)).toBe(real.get(name))
          expect(lazy.has(name)).toBe(real.has(name))
        }
        expect([...lazy]).toEqual([...real])
        expect(lazy.getSetCookie()).toEqual(real.getSetCookie())
      }),
      { numRuns: 500 }
    )
  })

  it('fills itself before it is changed, iterated or copied', () => {
    const raw = ['Host', 'bff.test', 'Cookie', 'a=1', 'X-Multi', 'a', 'x-multi', 'b']
    const changed = new RawHeaders(raw)
    changed.set('x-new', '1')
    changed.append('x-multi', 'c')
    changed.delete('host')
    const expected = reference(raw)
    expected.set('x-new', '1')
    expected.append('x-multi', 'c')
    expected.delete('host')
    expect([...changed]).toEqual([...expected])
    expect(changed.get('x-multi')).toBe('a, b, c')

    expect([...new Headers(new RawHeaders(raw))]).toEqual([...reference(raw)])
    const request = new Request('http://bff.test/', { headers: new RawHeaders(raw) })
    expect([...request.headers]).toEqual([...reference(raw)])
    const seen: string[] = []
    new RawHeaders(raw).forEach((v, k) => seen.push(`${k}=${v}`))
    expect(seen).toEqual(['cookie=a=1', 'host=bff.test', 'x-multi=a, b'])
    expect([...new RawHeaders(raw).keys()]).toEqual([...reference(raw).keys()])
    expect([...new RawHeaders(raw).values()]).toEqual([...reference(raw).values()])
  })

  it('refuses an invalid header name as Headers does', () => {
    expect(() => new RawHeaders(['a', 'b']).get('bad name')).toThrow(TypeError)
    expect(() => new RawHeaders(['a', 'b']).has('bad\nname')).toThrow(TypeError)
  })

  it('is a Headers', () => {
    expect(new RawHeaders([])).toBeInstanceOf(Headers)
  })
})

describe('RecordHeaders', () => {
  // As upstream.ts makes them: lower-case names, repeated lines already joined.
  const record = () => ({
    'content-type': 'application/json',
    vary: 'accept-encoding, origin',
    'cache-control': 'private',
    'x-b': '2',
    'x-a': '1',
  })

  it('reads and iterates like a Headers built from the same record', () => {
    const mine = new RecordHeaders(record())
    const theirs = new Headers(record())
    for (const name of ['Content-Type', 'content-type', 'VARY', 'x-missing', 'x-a']) {
      expect(mine.get(name)).toBe(theirs.get(name))
      expect(mine.has(name)).toBe(theirs.has(name))
    }
    expect([...mine]).toEqual([...theirs])
    expect([...mine.entries()]).toEqual([...theirs.entries()])
    expect([...mine.keys()]).toEqual([...theirs.keys()])
    expect([...mine.values()]).toEqual([...theirs.values()])
    const seen: string[] = []
    mine.forEach((value, name, parent) => {
      expect(parent).toBe(mine)
      seen.push(`${name}=${value}`)
    })
    expect(seen).toEqual([...theirs].map(([name, value]) => `${name}=${value}`))
    // What node-server does with an answer's headers, and what Response makes of them.
    expect(Object.fromEntries(mine)).toEqual(Object.fromEntries(theirs))
    expect([...new Response(null, { headers: mine }).headers]).toEqual([...theirs])
  })

  it('changes as a Headers does, and reads its changes afterwards', () => {
    const mine = new RecordHeaders(record())
    const theirs = new Headers(record())
    for (const headers of [mine, theirs]) {
      headers.set('Location', '/api/next')
      headers.append('Vary', 'cookie')
      headers.delete('x-a')
    }
    expect([...mine]).toEqual([...theirs])
    expect(mine.get('location')).toBe('/api/next')
    expect(mine.has('x-a')).toBe(false)
  })

  it('refuses an invalid header name on a change as Headers does', () => {
    expect(() => new RecordHeaders(record()).set('bad name', 'x')).toThrow(TypeError)
  })

  it('takes Set-Cookie lines as a Headers does, without becoming one', () => {
    const lines = ['__Host-bff=abc.def; Max-Age=60; Path=/', '__Host-bff.1=; Max-Age=0; Path=/']
    const mine = new RecordHeaders(record())
    const theirs = new Headers(record())
    for (const headers of [mine, theirs])
      for (const line of lines) headers.append('Set-Cookie', line)
    expect(mine.getSetCookie()).toEqual(theirs.getSetCookie())
    for (const name of ['set-cookie', 'Set-Cookie', 'x-a']) {
      expect(mine.get(name)).toBe(theirs.get(name))
      expect(mine.has(name)).toBe(theirs.has(name))
    }
    expect([...mine]).toEqual([...theirs])
    expect([...mine.keys()]).toEqual([...theirs.keys()])
    expect([...mine.values()]).toEqual([...theirs.values()])
    const seen: string[] = []
    mine.forEach((value, name) => seen.push(`${name}=${value}`))
    expect(seen).toEqual([...theirs].map(([name, value]) => `${name}=${value}`))
    expect([...new Response(null, { headers: mine }).headers]).toEqual([...theirs])
    // Changed further, it is a Headers with the lines in it.
    for (const headers of [mine, theirs]) {
      headers.append('set-cookie', ' padded=1 ')
      headers.delete('x-b')
    }
    expect([...mine]).toEqual([...theirs])
    expect(mine.getSetCookie()).toEqual(theirs.getSetCookie())
  })

  it('normalises or refuses a Set-Cookie value as Headers does', () => {
    const mine = new RecordHeaders(record())
    const theirs = new Headers(record())
    for (const headers of [mine, theirs]) headers.append('Set-Cookie', '\tspaced=1  ')
    expect(mine.getSetCookie()).toEqual(['spaced=1'])
    expect([...mine]).toEqual([...theirs])
    expect(() => new RecordHeaders(record()).append('Set-Cookie', 'a=1\r\nX-Evil: 1')).toThrow(
      TypeError
    )
    expect(() => new Headers().append('Set-Cookie', 'a=1\r\nX-Evil: 1')).toThrow(TypeError)
  })
})
