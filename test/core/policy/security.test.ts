import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { BffError } from '../../../src/core/errors.ts'
import { checkCsrf, csrfGuard } from '../../../src/core/policy/csrf.ts'
import { COOKIE_PREFIXES, cookieNames } from '../../../src/core/session/cookie-names.ts'
import { safeReturnTo } from '../../../src/core/policy/return-to.ts'

const BASE = 'https://app.example.com'

describe('safeReturnTo', () => {
  const accepted: Array<[string | undefined, string]> = [
    [undefined, '/'],
    ['', '/'],
    ['/', '/'],
    ['/path?q=1#h', '/path?q=1#h'],
    ['/dashboard/reports', '/dashboard/reports'],
    ['/search?q=a%20b&next=%2F', '/search?q=a%20b&next=%2F'],
  ]
  for (const [input, expected] of accepted) {
    it(`accepts ${JSON.stringify(input)} as ${expected}`, () => {
      expect(safeReturnTo(input, BASE)).toBe(expected)
    })
  }

  const rejected: Array<[string, string]> = [
    ['scheme-relative', '//evil.com'],
    ['scheme-relative with a path', '//evil.com/path'],
    ['slash-backslash', '/\\evil.com'],
    ['double backslash', '\\\\evil'],
    ['absolute https', 'https://evil.com'],
    ['absolute https on our own host', `${BASE}/x`],
    ['scheme without slashes', 'http:evil'],
    ['javascript:', 'javascript:alert(1)'],
    ['data:', 'data:text/html,<script>alert(1)</script>'],
    ['no leading slash', 'evil.com'],
    ['encoded //', '/%2f%2fevil.com'],
    ['encoded // upper case', '/%2F%2Fevil.com'],
    ['encoded backslash', '/%5cevil.com'],
    ['tab', '/\t/evil.com'],
    ['tab in path', '/pa\tth'],
    ['newline', '/a\nb'],
    ['carriage return', '/a\rb'],
    ['NUL', '/a\u0000b'],
    ['DEL', '/a\u007fb'],
    ['encoded CRLF (header injection)', '/a%0d%0aSet-Cookie:%20x=1'],
    ['encoded CRLF upper case', '/a%0D%0ALocation:%20https://evil.com'],
    ['encoded NUL', '/a%00'],
    ['malformed percent-encoding', '/%E0%A4%A'],
    ['lone percent', '/100%'],
    ['overlong', `/${'a'.repeat(2048)}`],
    // 700 characters, but 6 300 once percent-encoded: too long for the transaction cookie.
    ['overlong once encoded', `/${'€'.repeat(700)}`],
  ]
  for (const [what, input] of rejected) {
    it(`rejects ${what}: ${JSON.stringify(input.slice(0, 60))}`, () => {
      expect(safeReturnTo(input, BASE)).toBeNull()
    })
  }

  it('accepts a path of exactly 2048 characters', () => {
    const path = `/${'a'.repeat(2047)}`
    expect(safeReturnTo(path, BASE)).toBe(path)
  })

  // Dot segments are removed when the path is resolved. Whatever the input, the answer is used as a
  // Location header, so it must never come out as "//host" (scheme-relative: another origin).
  for (const input of [
    '/.//evil.com',
    '/%2e//evil.com',
    '/a/..//evil.com',
    '/%2e%2e//evil.com',
    '/../..//evil.com',
  ]) {
    it(`never turns ${input} into a scheme-relative redirect`, () => {
      const result = safeReturnTo(input, BASE)
      if (result !== null) {
        expect(result.startsWith('/')).toBe(true)
        expect(result.startsWith('//')).toBe(false)
        expect(new URL(result, BASE).origin).toBe(BASE)
      }
    })
  }

  it('only ever returns paths that stay on the base origin', () => {
    const inputs = [
      '/',
      '/a?b=//evil.com',
      '/a#//evil.com',
      '/./x',
      '/%2e/x',
      '/..',
      '/@evil.com',
      '/:@evil.com',
    ]
    for (const input of inputs) {
      const result = safeReturnTo(input, BASE)
      if (result === null) continue
      expect(result.startsWith('//'), input).toBe(false)
      expect(new URL(result, 'https://other.example').origin, input).toBe('https://other.example')
    }
  })
})

describe('cookieNames', () => {
  it('uses __Host- names on https', () => {
    expect(cookieNames('https://app.example.com')).toEqual({
      session: '__Host-bff',
      transaction: '__Host-bff-tx',
      loggedOut: '__Host-bff-out',
      lastIdp: '__Host-bff-idp',
    })
  })

  it('uses plain names on http', () => {
    expect(cookieNames('http://localhost:3000')).toEqual({
      session: 'bff',
      transaction: 'bff-tx',
      loggedOut: 'bff-out',
      lastIdp: 'bff-idp',
    })
  })

  it('starts every name with a prefix the BFF reads (the only cookies it parses)', () => {
    for (const [base, prefix] of [
      ['https://app.example.com', '__Host-bff'],
      ['http://localhost:3000', 'bff'],
    ] as const) {
      expect(COOKIE_PREFIXES).toContain(prefix)
      for (const name of Object.values(cookieNames(base)))
        expect(name.startsWith(prefix)).toBe(true)
    }
  })
})

/** A tiny app: the guard under test, a handler, and the one onError that renders BffError. */
function guardedApp() {
  const app = new Hono()
  app.onError((err, c) => {
    if (err instanceof BffError) return c.json({ error: err.code }, err.status)
    return c.json({ error: 'internal_error' }, 500)
  })
  app.use('/guarded/*', csrfGuard())
  app.get('/guarded/data', (c) => c.json({ ok: true }))
  app.post('/guarded/data', (c) => c.json({ ok: true }))
  app.get('/inline', (c) => {
    checkCsrf(c)
    return c.json({ ok: true })
  })
  return app
}

describe.each([
  ['csrfGuard middleware', 'GET', '/guarded/data'],
  ['csrfGuard middleware on POST', 'POST', '/guarded/data'],
  ['checkCsrf in a handler', 'GET', '/inline'],
])('%s', (_name, method, path) => {
  const app = guardedApp()
  const call = async (headers: Record<string, string>) => {
    const res = await app.request(path, { method, headers })
    return { status: res.status, body: (await res.json()) as Record<string, unknown> }
  }

  it('answers 403 csrf without the header', async () => {
    expect(await call({})).toEqual({ status: 403, body: { error: 'csrf' } })
  })

  it('answers 403 with X-CSRF: 0', async () => {
    expect(await call({ 'X-CSRF': '0' })).toEqual({ status: 403, body: { error: 'csrf' } })
  })

  it('answers 403 with other truthy-looking values', async () => {
    for (const value of ['true', '11', ' 1x', 'yes']) {
      expect((await call({ 'X-CSRF': value })).status, value).toBe(403)
    }
  })

  it('answers 403 with the header but Sec-Fetch-Site: cross-site', async () => {
    expect(await call({ 'X-CSRF': '1', 'Sec-Fetch-Site': 'cross-site' })).toEqual({
      status: 403,
      body: { error: 'csrf' },
    })
  })

  it('passes with X-CSRF: 1 and Sec-Fetch-Site: same-origin', async () => {
    expect(await call({ 'X-CSRF': '1', 'Sec-Fetch-Site': 'same-origin' })).toEqual({
      status: 200,
      body: { ok: true },
    })
  })

  it('passes with X-CSRF: 1 from a client that sends no Fetch Metadata', async () => {
    expect((await call({ 'X-CSRF': '1' })).status).toBe(200)
  })
})
