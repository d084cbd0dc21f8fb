import fc from 'fast-check'
import { Hono } from 'hono'
import { parse as honoParseCookies } from 'hono/utils/cookie'
import { describe, expect, it } from 'vitest'
import {
  CHUNK_SIZE,
  MAX_CHUNKS,
  cookiesNamed,
  readChunkedCookie,
  writeChunkedCookie,
  type CookieAttributes,
} from '../../../src/core/session/cookie.ts'
import { createSealer, sealExpiresAt } from '../../../src/core/session/seal.ts'

const NEW_SECRET = 'new-secret-0123456789-abcdefghijklmnop'
const OLD_SECRET = 'old-secret-9876543210-zyxwvutsrqponmlk'
const OTHER_SECRET = 'other-secret-unrelated-to-this-deployment'

const data = { sub: 'user-1', claims: { name: 'Ada', roles: ['admin'] }, n: 42 }

describe('createSealer', () => {
  it('refuses an empty secret list at construction', () => {
    expect(() => createSealer([])).toThrow(/secrets/)
  })

  it('round-trips data', async () => {
    const sealer = createSealer([NEW_SECRET])
    const sealed = await sealer.seal(data, 3600)
    expect(typeof sealed).toBe('string')
    expect(sealed).not.toContain('Ada')
    expect(await sealer.unseal(sealed)).toEqual(data)
  })

  it('tells when a seal expires without opening it (login keeps the newest transactions)', async () => {
    const sealer = createSealer([NEW_SECRET])
    const before = Date.now()
    const expiresAt = sealExpiresAt(await sealer.seal(data, 600))
    // It once read the HMAC salt instead: 0 for every seal, so nothing was ordered by age.
    expect(expiresAt).toBeGreaterThanOrEqual(before + 600_000)
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 600_000)
    expect(sealExpiresAt('not a seal')).toBe(0)
  })

  it('gives different seals for the same data (random salts and IV)', async () => {
    const sealer = createSealer([NEW_SECRET])
    expect(await sealer.seal(data, 3600)).not.toBe(await sealer.seal(data, 3600))
  })

  it('rejects a seal with one character changed in the middle', async () => {
    const sealer = createSealer([NEW_SECRET])
    const sealed = await sealer.seal(data, 3600)
    const mid = Math.floor(sealed.length / 2)
    const flipped = sealed[mid] === 'A' ? 'B' : 'A'
    const tampered = sealed.slice(0, mid) + flipped + sealed.slice(mid + 1)
    expect(tampered).not.toBe(sealed)
    expect(await sealer.unseal(tampered)).toBeNull()
  })

  it('rejects a change in every one of the seal components', async () => {
    const sealer = createSealer([NEW_SECRET])
    const sealed = await sealer.seal(data, 3600)
    const [body, version] = sealed.split('~')
    const parts = body!.split('*')
    // 0 prefix, 1 password id, 2 enc salt, 3 iv, 4 ciphertext, 5 expiry, 6 mac salt, 7 mac
    for (let i = 1; i < parts.length; i++) {
      const changed = [...parts]
      const part = changed[i]!
      changed[i] = part.length === 0 ? '1' : (part[0] === 'a' ? 'b' : 'a') + part.slice(1)
      expect(await sealer.unseal(`${changed.join('*')}~${version}`), `component ${i}`).toBeNull()
    }
  })

  it('rejects a seal made with another secret', async () => {
    const sealed = await createSealer([OTHER_SECRET]).seal(data, 3600)
    expect(await createSealer([NEW_SECRET]).unseal(sealed)).toBeNull()
  })

  it('rotation: a seal from the old secret opens with [new, old]', async () => {
    const sealed = await createSealer([OLD_SECRET]).seal(data, 3600)
    expect(await createSealer([NEW_SECRET, OLD_SECRET]).unseal(sealed)).toEqual(data)
  })

  it('rotation: [new, old] seals with the first secret', async () => {
    const sealed = await createSealer([NEW_SECRET, OLD_SECRET]).seal(data, 3600)
    expect(await createSealer([NEW_SECRET]).unseal(sealed)).toEqual(data)
    expect(await createSealer([OLD_SECRET]).unseal(sealed)).toBeNull()
  })

  it('rotation: once the old secret is dropped, its seals stop opening', async () => {
    const sealed = await createSealer([OLD_SECRET]).seal(data, 3600)
    expect(await createSealer([NEW_SECRET]).unseal(sealed)).toBeNull()
  })

  it('names the key in the seal without revealing the secret', async () => {
    const sealed = await createSealer([NEW_SECRET]).seal(data, 3600)
    expect(sealed).not.toContain(NEW_SECRET)
    expect(sealed.split('*')[1]).toMatch(/^\d+$/)
  })

  // iron itself accepts a seal for 60 s past its expiry (clock skew); the sealer checks its own
  // expiry too, so a 1 s seal is refused once that second has passed.
  it('rejects an expired seal', async () => {
    const sealer = createSealer([NEW_SECRET])
    const sealed = await sealer.seal(data, 1)
    expect(await sealer.unseal(sealed)).toEqual(data)
    await new Promise((resolve) => setTimeout(resolve, 2100))
    expect(await sealer.unseal(sealed)).toBeNull()
  })

  it("dates and checks a seal's expiry on the injected clock, fresh and remembered alike", async () => {
    let time = Date.now()
    const sealer = createSealer([NEW_SECRET], { now: () => time })
    const sealed = await sealer.seal(data, 600)
    expect(await sealer.unseal(sealed, { cache: true })).toEqual(data)
    time += 599_000
    expect(await sealer.unseal(sealed)).toEqual(data)
    expect(await sealer.unseal(sealed, { cache: true })).toEqual(data)
    // Past its expiry on the app's clock, though real time has hardly moved: refused.
    time += 2_000
    expect(await sealer.unseal(sealed)).toBeNull()
    expect(await sealer.unseal(sealed, { cache: true })).toBeNull()
    // Sealed while the clock is ahead, it lasts its ttl from then on that clock.
    const later = await sealer.seal(data, 60)
    time += 59_000
    expect(await sealer.unseal(later)).toEqual(data)
  })

  it('rejects garbage without throwing', async () => {
    const sealer = createSealer([NEW_SECRET])
    const garbage = [
      '',
      'abc',
      'Fe26.2*1*x',
      'Fe26.2*1*x~2',
      'Fe26.2********~2',
      'Fe26.2*1*a*b*c*d*e*f~2',
      'Fe26.2*1*a*b*c*notanumber*e*f~2',
      '~~~~',
      '*'.repeat(7),
      'A'.repeat(1_000_000),
      `Fe26.2*${'9'.repeat(500)}*a*b*c**e*f~2`,
      '\u0000\uffff',
    ]
    for (const input of garbage) {
      await expect(sealer.unseal(input), input.slice(0, 40)).resolves.toBeNull()
    }
  })

  it('gives back an empty object as sealed', async () => {
    const sealer = createSealer([NEW_SECRET])
    expect(await sealer.unseal(await sealer.seal({}, 3600))).toEqual({})
  })

  it('tells seals of an older secret from seals of the first', async () => {
    const sealer = createSealer([NEW_SECRET, OLD_SECRET])
    expect(await sealer.isStale(await sealer.seal(data, 3600))).toBe(false)
    expect(await sealer.isStale(await createSealer([OLD_SECRET]).seal(data, 3600))).toBe(true)
    expect(await sealer.isStale('no-star')).toBe(true)
  })
})

describe('createSealer: remembered seals', () => {
  it('answers a seal opened before from memory, frozen, and only when asked to', async () => {
    const sealer = createSealer([NEW_SECRET])
    const sealed = await sealer.seal(data, 3600)
    const first = await sealer.unseal<typeof data>(sealed, { cache: true })
    expect(first).toEqual(data)
    expect(await sealer.unseal(sealed, { cache: true })).toBe(first)
    // Shared between requests, so nobody may change it.
    expect(Object.isFrozen(first)).toBe(true)
    expect(Object.isFrozen(first!.claims.roles)).toBe(true)
    // Without the option, a fresh copy every time.
    const uncached = await sealer.unseal(sealed)
    expect(uncached).toEqual(data)
    expect(uncached).not.toBe(first)
  })

  it('keeps the seal expiry: a remembered seal stops opening when it expires', async () => {
    const sealer = createSealer([NEW_SECRET])
    const sealed = await sealer.seal(data, 1)
    expect(await sealer.unseal(sealed, { cache: true })).toEqual(data)
    await new Promise((resolve) => setTimeout(resolve, 2100))
    expect(await sealer.unseal(sealed, { cache: true })).toBeNull()
    expect(await sealer.unseal(sealed, { cache: true })).toBeNull()
  })

  it('remembers nothing that did not open: forgeries and other secrets stay refused', async () => {
    const sealer = createSealer([NEW_SECRET, OLD_SECRET])
    const foreign = await createSealer([OTHER_SECRET]).seal(data, 3600)
    expect(await sealer.unseal(foreign, { cache: true })).toBeNull()
    expect(await sealer.unseal(foreign, { cache: true })).toBeNull()
    // Rotation: an old secret's seal opens (and is remembered) while the old secret is listed...
    const old = await createSealer([OLD_SECRET]).seal(data, 3600)
    expect(await sealer.unseal(old, { cache: true })).toEqual(data)
    expect(await sealer.isStale(old)).toBe(true)
    // ...and a sealer without it (the next deployment) never opens it: memory is per sealer.
    expect(await createSealer([NEW_SECRET]).unseal(old, { cache: true })).toBeNull()
  })

  it('answers from memory only for the exact seal: a forgery with the same ending is refused', async () => {
    const sealer = createSealer([NEW_SECRET])
    const sealed = await sealer.seal(data, 3600)
    expect(await sealer.unseal(sealed, { cache: true })).toEqual(data)
    const mid = Math.floor(sealed.length / 3)
    const forged = sealed.slice(0, mid) + (sealed[mid] === 'A' ? 'B' : 'A') + sealed.slice(mid + 1)
    expect(forged.slice(-64)).toBe(sealed.slice(-64))
    expect(await sealer.unseal(forged, { cache: true })).toBeNull()
    // ...and the real one is still remembered.
    expect(await sealer.unseal(sealed, { cache: true })).toEqual(data)
  })

  it('is bounded by entries, least recently used first out', async () => {
    const sealer = createSealer([NEW_SECRET], { cacheEntries: 2 })
    const [a, b, c] = await Promise.all([1, 2, 3].map((n) => sealer.seal({ n }, 3600)))
    const first = await sealer.unseal(a!, { cache: true })
    const second = await sealer.unseal(b!, { cache: true })
    expect(await sealer.unseal(a!, { cache: true })).toBe(first) // a is now the most recent
    await sealer.unseal(c!, { cache: true }) // evicts b
    expect(await sealer.unseal(a!, { cache: true })).toBe(first)
    expect(await sealer.unseal(b!, { cache: true })).not.toBe(second)
  })

  it('is bounded by bytes, and off with 0 entries', async () => {
    for (const options of [{ cacheBytes: 100 }, { cacheEntries: 0 }]) {
      const sealer = createSealer([NEW_SECRET], options)
      const sealed = await sealer.seal(data, 3600)
      const first = await sealer.unseal(sealed, { cache: true })
      expect(first).toEqual(data)
      expect(await sealer.unseal(sealed, { cache: true })).not.toBe(first)
    }
    expect(() => createSealer([NEW_SECRET], { cacheEntries: -1 })).toThrow(/cacheEntries/)
  })
})

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

/** A Cookie request header from Set-Cookie lines, as a browser would send them back. */
function cookieHeader(setCookies: string[]): string {
  return setCookies.map((line) => line.split(';')[0]).join('; ')
}

describe('chunked cookies', () => {
  it('splits a 10 KB value into name, name.1, name.2 with the right attributes', async () => {
    const app = cookieApp('bff', STRICT)
    const value = bigValue(10 * 1024)
    const res = await app.request('/write', { method: 'POST', body: value })
    const lines = res.headers.getSetCookie()
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
    expect(lines).toHaveLength(3)
    expect(lines.map((l) => l.split('=')[0])).toEqual([
      '__Host-bff',
      '__Host-bff.1',
      '__Host-bff.2',
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
      'bff=small; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict',
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
    expect(lines[0]).toBe('bff=small; Path=/; Max-Age=3600; HttpOnly; SameSite=Strict')
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
  const pair = fc.tuple(fc.oneof(name, fc.constantFrom('bff', 'bff.1', 'bff.2', 'bffx')), quoted)
  const header = fc
    .array(fc.tuple(pair, fc.constantFrom('; ', ';', ' ;  ', ';\t')), { maxLength: 8 })
    .map((pairs) => pairs.map(([[k, v], sep], i) => `${i ? sep : ''}${k}=${v}`).join(''))

  it("answers what hono's cookie parser answers for the names it asks for", () => {
    fc.assert(
      fc.property(header, fc.constantFrom('bff', 'bff.', '__Host-bff'), (cookie, prefix) => {
        const expected = Object.fromEntries(
          Object.entries(honoParseCookies(cookie)).filter(([k]) => k.startsWith(prefix))
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
