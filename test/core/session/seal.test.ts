import { describe, expect, it } from 'vitest'
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

  it('an expired seal opens within its grace for `expired` only, never for `unseal`', async () => {
    let t = 1_900_000_000_000
    const sealer = createSealer([NEW_SECRET], { now: () => t })
    const idle = await sealer.seal(data, 600, { graceSeconds: 3600 })
    const final = await sealer.seal(data, 600, { graceSeconds: 3600, final: true })
    const noGrace = await sealer.seal(data, 600)
    // While alive: unseal answers, expired does not.
    expect(await sealer.unseal(idle, { cache: true })).toEqual(data)
    expect(await sealer.expired(idle)).toBeNull()
    t += 601_000
    // Expired: never a session again, but what it held and that it expired, within the grace.
    expect(await sealer.unseal(idle, { cache: true })).toBeNull()
    expect(await sealer.unseal(idle)).toBeNull()
    expect(await sealer.expired(idle)).toEqual({ value: data, exp: 1_900_000_600, final: false })
    expect((await sealer.expired(final))?.final).toBe(true)
    // A forgery or another secret's seal is not "expired": it is nothing.
    expect(await createSealer([OTHER_SECRET], { now: () => t }).expired(idle)).toBeNull()
    const tampered = idle.slice(0, 40) + (idle[40] === 'a' ? 'b' : 'a') + idle.slice(41)
    expect(await sealer.expired(tampered)).toBeNull()
    t += 3600_000 + 61_000 // past the grace (and iron's 60 s allowance)
    expect(await sealer.expired(idle)).toBeNull()
    expect(await sealer.expired(noGrace)).toBeNull()
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
