/** Session and transaction cookies: the Set-Cookie line, chunks, and reading them back. */
import fc from 'fast-check'
import { Hono } from 'hono'
import { generateCookie } from 'hono/cookie'
import { parse as honoParseCookies } from 'hono/utils/cookie'
import { describe, expect, it } from 'vitest'
import {
  CHUNK_SIZE,
  MAX_CHUNKS,
  cookiesNamed,
  readChunkedCookie,
  requestCookies,
  serializeCookie,
  setCookieBytes,
  writeChunkedCookie,
  type CookieAttributes,
  type CookieBudget,
} from '../../../src/core/session/cookie.ts'
import { COOKIE_PREFIXES } from '../../../src/core/session/cookie-names.ts'
import { createSealer } from '../../../src/core/session/seal.ts'

const NEW_SECRET = 'new-secret-0123456789-abcdefghijklmnop'

const STRICT: CookieAttributes = { secure: false, sameSite: 'Strict', maxAge: 3600 }

/** Base64url-like text with no two chunks alike, so a reordering or a lost chunk shows. */
function bigValue(length: number): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  let out = ''
  for (let i = 0; out.length < length; i++) out += alphabet[(i * 7 + (i >> 6)) % alphabet.length]
  return out
}

function cookieApp(name: string, attrs: CookieAttributes) {
  const app = new Hono()
  app.post('/write', async (c) => {
    writeChunkedCookie(c, name, await c.req.text(), attrs)
    return c.text('ok')
  })
  app.get('/read', (c) => c.json({ value: readChunkedCookie(c, name) ?? null }))
  return app
}

/** The lines that set a cookie, not those that delete one. */
const setting = (lines: string[]) => lines.filter((line) => !line.includes('Max-Age=0'))

/** A Cookie request header from Set-Cookie lines, as a browser would send them back. */
function cookieHeader(setCookies: string[]): string {
  return setting(setCookies)
    .map((line) => line.split(';')[0])
    .join('; ')
}

describe('chunked cookies', () => {
  it('splits a 10 KB value into name, name.1, name.2 with the right attributes', async () => {
    const app = cookieApp('bff', STRICT)
    const value = bigValue(10 * 1024)
    const res = await app.request('/write', { method: 'POST', body: value })
    const all = res.headers.getSetCookie()
    // The chunk after the last is deleted, in case a concurrent answer wrote more.
    expect(all.slice(3)).toEqual(['bff.3=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict'])
    const lines = setting(all)
    expect(lines.map((l) => l.split('=')[0])).toEqual(['bff', 'bff.1', 'bff.2'])
    for (const line of lines) {
      expect(new TextEncoder().encode(`Set-Cookie: ${line}`).length).toBeLessThan(4096)
      const attrs = line.split('; ').slice(1)
      expect(attrs).toContain('HttpOnly')
      expect(attrs).toContain('Path=/')
      expect(attrs).toContain('SameSite=Strict')
      expect(attrs).toContain('Max-Age=3600')
      expect(attrs).not.toContain('Secure')
      expect(attrs.some((a) => a.startsWith('Domain'))).toBe(false)
    }
    expect(lines.map((l) => l.split(';')[0]!.split('=')[1]).join('')).toBe(value)
  })

  it('adds Secure when secure is true, and keeps __Host- names', async () => {
    const app = cookieApp('__Host-bff', { ...STRICT, secure: true })
    const res = await app.request('/write', { method: 'POST', body: bigValue(10 * 1024) })
    const lines = res.headers.getSetCookie()
    expect(lines).toHaveLength(4)
    expect(lines.map((l) => l.split('=')[0])).toEqual([
      '__Host-bff',
      '__Host-bff.1',
      '__Host-bff.2',
      '__Host-bff.3',
    ])
    for (const line of lines) {
      const attrs = line.split('; ').slice(1)
      expect(attrs).toContain('Secure')
      expect(attrs).toContain('HttpOnly')
      expect(attrs).toContain('Path=/')
      expect(attrs).toContain('SameSite=Strict')
      expect(new TextEncoder().encode(`Set-Cookie: ${line}`).length).toBeLessThan(4096)
    }
  })

  it('writes a small value as a single cookie', async () => {
    const res = await cookieApp('bff', STRICT).request('/write', { method: 'POST', body: 'small' })
    expect(res.headers.getSetCookie()).toEqual([
      'bff=small; Max-Age=3600; Path=/; HttpOnly; SameSite=Strict',
      'bff.1=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict',
    ])
  })

  it('reassembles the exact value from the Cookie header', async () => {
    const app = cookieApp('bff', STRICT)
    const value = bigValue(10 * 1024)
    const written = await app.request('/write', { method: 'POST', body: value })
    const cookie = cookieHeader(written.headers.getSetCookie())
    const res = await app.request('/read', { headers: { Cookie: `other=1; ${cookie}; last=2` } })
    expect(await res.json()).toEqual({ value })
  })

  it('reassembles chunks whatever their order in the Cookie header', async () => {
    const app = cookieApp('bff', STRICT)
    const value = bigValue(3 * CHUNK_SIZE + 5)
    const written = await app.request('/write', { method: 'POST', body: value })
    const reversed = cookieHeader(written.headers.getSetCookie().reverse())
    const res = await app.request('/read', { headers: { Cookie: reversed } })
    expect(await res.json()).toEqual({ value })
  })

  it('reads nothing when the cookie is absent', async () => {
    const res = await cookieApp('bff', STRICT).request('/read', { headers: { Cookie: 'bff.1=x' } })
    expect(await res.json()).toEqual({ value: null })
  })

  it('leaves no stale tail when a concurrent answer for the same cookie wrote more chunks', async () => {
    const app = cookieApp('bff', STRICT)
    const sent = 'bff=small'
    // Two answers to requests that carried the same one-chunk cookie: one grew the value to
    // three chunks, the other wrote one; the browser applies the larger first.
    const grown = await app.request('/write', {
      method: 'POST',
      body: bigValue(10 * 1024),
      headers: { Cookie: sent },
    })
    const kept = await app.request('/write', {
      method: 'POST',
      body: 'newer',
      headers: { Cookie: sent },
    })
    const jar = new Map<string, string>()
    for (const line of [...grown.headers.getSetCookie(), ...kept.headers.getSetCookie()]) {
      const [pair] = line.split(';')
      const [name, value] = pair!.split('=') as [string, string]
      if (line.includes('Max-Age=0')) jar.delete(name)
      else jar.set(name, value)
    }
    // Without deleting bff.1, the jar would hold newer + the grown value's bff.1 and bff.2.
    expect([...jar.keys()]).toEqual(['bff', 'bff.2'])
    const cookie = [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
    const res = await app.request('/read', { headers: { Cookie: cookie } })
    expect(await res.json()).toEqual({ value: 'newer' })
  })

  it('deletes the chunks a smaller value no longer needs', async () => {
    const app = cookieApp('bff', STRICT)
    const big = await app.request('/write', { method: 'POST', body: bigValue(10 * 1024) })
    const res = await app.request('/write', {
      method: 'POST',
      body: 'small',
      headers: { Cookie: cookieHeader(big.headers.getSetCookie()) },
    })
    const lines = res.headers.getSetCookie()
    expect(lines).toHaveLength(3)
    expect(lines[0]).toBe('bff=small; Max-Age=3600; Path=/; HttpOnly; SameSite=Strict')
    const deletions = lines.slice(1)
    expect(deletions.map((l) => l.split(';')[0])).toEqual(['bff.1=', 'bff.2='])
    for (const line of deletions) {
      expect(line).toContain('Max-Age=0')
      expect(line).toContain('Path=/')
    }

    // The browser, after applying these lines, sends only the small value back.
    const read = await app.request('/read', { headers: { Cookie: 'bff=small' } })
    expect(await read.json()).toEqual({ value: 'small' })
  })

  it('refuses a value needing more than MAX_CHUNKS chunks', async () => {
    const app = new Hono()
    let thrown: unknown
    app.post('/write', async (c) => {
      try {
        writeChunkedCookie(c, 'bff', await c.req.text(), STRICT)
      } catch (err) {
        thrown = err
      }
      return c.text('done')
    })
    const res = await app.request('/write', {
      method: 'POST',
      body: bigValue(MAX_CHUNKS * CHUNK_SIZE + 1),
    })
    expect(thrown).toBeInstanceOf(Error)
    expect(res.headers.getSetCookie()).toEqual([])
  })

  it('accepts a value of exactly MAX_CHUNKS chunks and reads it back', async () => {
    const app = cookieApp('bff', STRICT)
    const value = bigValue(MAX_CHUNKS * CHUNK_SIZE)
    const written = await app.request('/write', { method: 'POST', body: value })
    const lines = written.headers.getSetCookie()
    expect(lines).toHaveLength(MAX_CHUNKS)
    const res = await app.request('/read', { headers: { Cookie: cookieHeader(lines) } })
    expect(await res.json()).toEqual({ value })
  })

  it('carries a real sealed session through the chunks', async () => {
    const sealer = createSealer([NEW_SECRET])
    const session = { sub: 'user-1', idToken: bigValue(6000), accessToken: bigValue(3000) }
    const sealed = await sealer.seal(session, 3600)
    const app = cookieApp('bff', STRICT)
    const written = await app.request('/write', { method: 'POST', body: sealed })
    expect(written.headers.getSetCookie().length).toBeGreaterThan(1)
    const res = await app.request('/read', {
      headers: { Cookie: cookieHeader(written.headers.getSetCookie()) },
    })
    const { value } = (await res.json()) as { value: string }
    expect(await sealer.unseal(value)).toEqual(session)
  })
})

describe('cookiesNamed', () => {
  // What browsers send: names and values from the cookie grammar, no percent-encoding (a seal has none).
  const name = fc.stringMatching(/^[A-Za-z0-9_.!#$&'*+^`|~-]{1,12}$/)
  const value = fc.stringMatching(/^[A-Za-z0-9!#$&'()*+\-./:<=>?@[\]^_`{|}~]{0,60}$/)
  const quoted = fc.tuple(value, fc.boolean()).map(([v, quote]) => (quote ? `"${v}"` : v))
  const ours = fc.constantFrom('bff', 'bff.1', 'bff.2', 'bffx', '__Host-bff', 'bff-tx.ab')
  const pair = fc.tuple(fc.oneof(name, ours), quoted)
  const header = fc
    .array(fc.tuple(pair, fc.constantFrom('; ', ';', ' ;  ', ';\t')), { maxLength: 8 })
    .map((pairs) => pairs.map(([[k, v], sep], i) => `${i ? sep : ''}${k}=${v}`).join(''))

  const prefixes: (string | readonly string[])[] = [
    '',
    'bff',
    'bff.',
    '__Host-bff',
    COOKIE_PREFIXES,
  ]

  it("answers what hono's cookie parser answers for the names it asks for", () => {
    fc.assert(
      fc.property(header, fc.constantFrom(...prefixes), (cookie, prefix) => {
        const wanted = typeof prefix === 'string' ? [prefix] : prefix
        const expected = Object.fromEntries(
          Object.entries(honoParseCookies(cookie)).filter(([k]) =>
            wanted.some((p) => k.startsWith(p))
          )
        )
        expect({ ...cookiesNamed(cookie, prefix) }).toEqual(expected)
      }),
      { numRuns: 2000 }
    )
  })

  it('keeps the first of two cookies with one name, strips quotes, ignores pairs without =', () => {
    expect({ ...cookiesNamed('x; bff="a"; bff=b; bff.1 = c ;bff.2', 'bff') }).toEqual({
      bff: 'a',
      'bff.1': 'c',
    })
    expect({ ...cookiesNamed('other=1', 'bff') }).toEqual({})
    const odd = cookiesNamed('__proto__=1; bff=2', '__proto__')
    expect(Object.keys(odd)).toEqual(['__proto__'])
    expect(odd['__proto__']).toBe('1')
  })
})

describe('the Set-Cookie line', () => {
  it("is the line hono's generateCookie writes, byte for byte, for any value it accepts (property)", () => {
    const name = fc.constantFrom(
      '__Host-bff',
      '__Host-bff.3',
      '__Host-bff-tx.ab_c',
      'bff',
      'bff-out'
    )
    const value = fc.stringMatching(/^[\w.!~*'()-]{0,300}$/)
    const attrs = fc.record({
      secure: fc.boolean(),
      sameSite: fc.constantFrom('Strict' as const, 'Lax' as const),
      maxAge: fc.oneof(
        fc.integer({ min: -100, max: 50_000_000 }),
        fc.double({ min: -1, max: 1e9, noNaN: true })
      ),
    })
    fc.assert(
      fc.property(name, value, attrs, (name, value, attrs) => {
        expect(serializeCookie(name, value, attrs)).toBe(honoLine(name, value, attrs))
      }),
      { numRuns: 2000 }
    )
  })

  it('refuses a name that is no cookie name, and a __Secure- name without Secure', () => {
    for (const name of ['', 'a b', 'a;b', 'a=b', 'é']) {
      expect(() => serializeCookie(name, 'v', STRICT)).toThrow(/not a cookie name/)
    }
    expect(() => serializeCookie('__Secure-x', 'v', { ...STRICT, secure: false })).toThrow(/Secure/)
    expect(serializeCookie('__Secure-x', 'v', { ...STRICT, secure: true })).toContain('; Secure')
  })

  it('writes a __Host- cookie with Secure and Path=/ and no Domain, even when asked for less', async () => {
    const insecure = { secure: false, sameSite: 'Lax', maxAge: 60 } as const
    expect(serializeCookie('__Host-bff-tx.abc', 'v', insecure)).toBe(
      '__Host-bff-tx.abc=v; Max-Age=60; Path=/; HttpOnly; Secure; SameSite=Lax'
    )
    const res = await cookieApp('__Host-bff', { ...STRICT, secure: false }).request('/write', {
      method: 'POST',
      body: bigValue(2 * CHUNK_SIZE),
    })
    const lines = res.headers.getSetCookie()
    expect(setting(lines)).toHaveLength(2)
    for (const line of lines) {
      expect(line.split('; ')).toEqual(expect.arrayContaining(['Secure', 'Path=/', 'HttpOnly']))
      expect(line).not.toMatch(/Domain/i)
    }
  })

  it('keeps Max-Age between 0 (deleted, never a browser-session cookie) and 400 days', () => {
    expect(serializeCookie('bff', '', { ...STRICT, maxAge: -5 })).toContain('; Max-Age=0;')
    expect(serializeCookie('bff', 'v', { ...STRICT, maxAge: 59.9 })).toContain('; Max-Age=59;')
    // A long BFF_SESSION_LIFETIME: browsers cap it at 400 days anyway, and hono would throw.
    expect(serializeCookie('bff-out', '1', { ...STRICT, maxAge: 10 * 365 * 86_400 })).toContain(
      '; Max-Age=34560000;'
    )
  })

  it('refuses a value its URL-encoding would change (the byte budget counts the value as is)', () => {
    for (const value of ['a b', 'a;b', 'a%41', 'é', 'a"b', 'a,b']) {
      expect(() => serializeCookie('bff', value, STRICT)).toThrow(/cookie-safe/)
    }
    expect(serializeCookie('bff', "Fe26.2*1*a-b_c*~2.!'()", STRICT)).toMatch(
      /^bff=Fe26\.2\*1\*a-b_c\*~2\.!'\(\); /
    )
  })
})

/** The line as the BFF wrote it through hono's `generateCookie` until 2026-12-03. */
function honoLine(name: string, value: string, attrs: CookieAttributes): string {
  const options = {
    path: '/',
    maxAge: Math.min(400 * 24 * 3600, Math.max(0, Math.floor(attrs.maxAge))),
    httpOnly: true,
    secure: attrs.secure,
    sameSite: attrs.sameSite,
  }
  return name.startsWith('__Host-')
    ? generateCookie(name.slice('__Host-'.length), value, { ...options, prefix: 'host' })
    : generateCookie(name, value, options)
}

/** The serializer the BFF had before hono's: cookies it set are still in browsers. */
function oldSerializeCookie(name: string, value: string, attrs: CookieAttributes): string {
  let line = `${name}=${value}; Path=/; Max-Age=${Math.max(0, Math.floor(attrs.maxAge))}; HttpOnly`
  if (attrs.secure) line += '; Secure'
  return `${line}; SameSite=${attrs.sameSite}`
}

describe("cookies set before the serializer was hono's", () => {
  const attrs: CookieAttributes = { secure: true, sameSite: 'Strict', maxAge: 43_200 }
  const budgets: (CookieBudget | undefined)[] = [
    undefined,
    { maxCookieBytes: 3584, maxTotalBytes: 8192 },
    { maxCookieBytes: 1024, maxTotalBytes: 8192 },
  ]

  it.each(budgets)(
    'carry the same name=value pairs in lines of the same bytes (%o)',
    async (budget) => {
      const sealer = createSealer([NEW_SECRET])
      const sealed = await sealer.seal({ session: { sub: 'u', idToken: bigValue(4000) } }, 3600)
      const overhead = oldSerializeCookie('__Host-bff.8', '', attrs).length
      const size = budget ? Math.min(CHUNK_SIZE, budget.maxCookieBytes - overhead) : CHUNK_SIZE
      const old: string[] = []
      for (let i = 0; i * size < sealed.length; i++) {
        const name = i === 0 ? '__Host-bff' : `__Host-bff.${i}`
        old.push(oldSerializeCookie(name, sealed.slice(i * size, (i + 1) * size), attrs))
      }
      expect(old.length).toBeGreaterThan(1)

      let written = 0
      const app = new Hono().get('/', (c) => {
        written = writeChunkedCookie(c, '__Host-bff', sealed, attrs, budget)
        return c.text('ok')
      })
      const lines = setting((await app.request('/')).headers.getSetCookie())
      expect(cookieHeader(lines)).toBe(cookieHeader(old))
      expect(lines.map((line) => line.length)).toEqual(old.map((line) => line.length))
      expect(written).toBe(
        setCookieBytes(new Headers(old.map((line): [string, string] => ['Set-Cookie', line])))
      )
    }
  )

  it('are read and unsealed as they were', async () => {
    const sealer = createSealer([NEW_SECRET])
    const data = { session: { sub: 'u', idToken: bigValue(6000) } }
    const sealed = await sealer.seal(data, 3600)
    const old: string[] = []
    for (let i = 0; i * CHUNK_SIZE < sealed.length; i++) {
      const name = i === 0 ? '__Host-bff' : `__Host-bff.${i}`
      old.push(oldSerializeCookie(name, sealed.slice(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE), attrs))
    }
    expect(old.length).toBeGreaterThan(2)
    const app = cookieApp('__Host-bff', attrs)
    const res = await app.request('/read', { headers: { Cookie: `a=1; ${cookieHeader(old)}` } })
    const { value } = (await res.json()) as { value: string }
    expect(await sealer.unseal(value)).toEqual(data)
  })
})

describe('requestCookies', () => {
  it('parses the Cookie header once per request, and each request its own', async () => {
    const seen: Record<string, string>[] = []
    const app = new Hono().get('/', (c) => {
      seen.push(requestCookies(c), requestCookies(c))
      return c.text(String(readChunkedCookie(c, 'bff')))
    })
    let reads = 0
    const request = (cookie: string) => {
      const req = new Request('http://app.test/', { headers: { cookie } })
      const get = req.headers.get.bind(req.headers)
      req.headers.get = (name: string) => {
        if (name.toLowerCase() === 'cookie') reads++
        return get(name)
      }
      return req
    }
    expect(await (await app.fetch(request('x=1; bff=a; bff.1=b'))).text()).toBe('ab')
    expect(reads).toBe(1)
    expect(seen[0]).toBe(seen[1])
    // Only the BFF's own: the site's other cookies are never parsed.
    expect({ ...seen[0] }).toEqual({ bff: 'a', 'bff.1': 'b' })
    expect(await (await app.fetch(request('bff=c'))).text()).toBe('c')
    expect(reads).toBe(2)
    expect(seen[2]).not.toBe(seen[0])
    expect(await (await app.fetch(new Request('http://app.test/'))).text()).toBe('undefined')
  })
})
