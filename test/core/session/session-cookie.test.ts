/**
 * The server stores' session-id cookie: `<id>.<exp>.<grace>.<mac>`, 77 bytes. A forged, altered or foreign value
 * opens to nothing (and, in the manager, costs no store lookup); the older sealed form still opens
 * and is marked for writing again; secret rotation keeps its meaning.
 */
import { Hono } from 'hono'
import { createHmac } from 'node:crypto'
import { beforeEach, describe, expect, it } from 'vitest'
import type { BffEnv } from '../../../src/core/hono-env.ts'
import { createSessionManager } from '../../../src/core/session/manager.ts'
import { createSealer } from '../../../src/core/session/seal.ts'
import { createSessionCookies, type Hmac } from '../../../src/core/session/session-cookie.ts'
import { memoryStore } from '../../../src/core/session/stores/memory.ts'
import type { SessionStore } from '../../../src/core/session/types.ts'
import { makeSession, randomId } from '../../../src/testing/sessions.ts'

const NEW = 'new-secret-0123456789-abcdefghijklmnop'
const OLD = 'old-secret-0123456789-abcdefghijklmnop'

// Whole seconds: the compact form dates to the second.
let clock = Math.floor(Date.now() / 1000) * 1000
const now = () => clock
beforeEach(() => {
  clock = Math.floor(Date.now() / 1000) * 1000
})

const cookiesFor = (secrets: string[], hmac?: Hmac) =>
  createSessionCookies(createSealer(secrets, { now }), secrets, { hmac, now })

const nodeHmac: Hmac = (secret, message) =>
  new Uint8Array(createHmac('sha256', secret).update(message).digest())

/** The parts of a compact value: id, expiry, grace (with `F` when final) and MAC. */
const partsOf = (value: string) => value.split('.') as [string, string, string, string]

describe('the compact session-id cookie', () => {
  it('is the id, its expiry and grace, and a 128-bit MAC: 77 characters, cookie-safe', async () => {
    const id = randomId()
    const value = await cookiesFor([NEW]).idValue(id, 3600, { graceSeconds: 3600 })
    expect(value).toMatch(/^[\w-]{43}\.[0-9a-z]{6}\.[0-9a-z]+\.[\w-]{22}$/)
    expect(value.length).toBe(77)
    const [carried, exp, grace] = partsOf(value)
    expect(carried).toBe(id)
    expect(parseInt(exp, 36)).toBe(clock / 1000 + 3600)
    expect(parseInt(grace, 36)).toBe(3600)
    expect(await cookiesFor([NEW]).open(value)).toEqual({ ref: { id }, stale: false })
    const final = await cookiesFor([NEW]).idValue(id, 60, { graceSeconds: 15, final: true })
    expect(partsOf(final)[2]).toBe('fF')
  })

  it('is the same with WebCrypto and node:crypto', async () => {
    const id = randomId()
    expect(await cookiesFor([NEW]).idValue(id, 60)).toBe(
      await cookiesFor([NEW], nodeHmac).idValue(id, 60)
    )
  })

  it('refuses forged, altered and foreign values', async () => {
    const cookies = cookiesFor([NEW])
    const id = randomId()
    const value = await cookies.idValue(id, 3600, { graceSeconds: 3600 })
    const [, exp, grace, mac] = partsOf(value)
    const flip = (text: string, at: number) =>
      text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1)
    const later = (parseInt(exp, 36) + 86_400).toString(36)
    for (const forged of [
      `${randomId()}.${exp}.${grace}.${randomId(16)}`, // a guess
      `${randomId()}.${exp}.${grace}.${mac}`, // another id with this MAC
      `${flip(id, 0)}.${exp}.${grace}.${mac}`,
      `${id}.${later}.${grace}.${mac}`, // a later expiry
      `${id}.${exp}.zzzz.${mac}`, // a longer grace
      `${id}.${exp}.${grace}F.${mac}`, // marked final
      `${id}.${exp}.${grace}.${flip(mac, 21)}`,
      `${id}.${exp}.${grace}.${flip(mac, 0)}`,
      `${id}.${exp}.${grace}.${mac.slice(0, 21)}`,
      `${id}.${exp}.${grace}.${mac}A`,
      `${id}.${mac}`,
      `${id}`,
      await cookiesFor([OLD]).idValue(id, 3600, { graceSeconds: 3600 }), // another secret's
      '',
      '.',
    ]) {
      expect(await cookies.open(forged), forged).toBeNull()
      expect(await cookies.expired(forged), forged).toBeNull()
    }
  })

  it('opens until its expiry, then only tells that its session expired, until its grace ends', async () => {
    const cookies = cookiesFor([NEW])
    const id = randomId()
    const value = await cookies.idValue(id, 60, { graceSeconds: 3600, final: true })
    expect(await cookies.open(value, { cache: true })).toEqual({ ref: { id }, stale: false })
    expect(await cookies.expired(value)).toBeNull()
    const exp = clock / 1000 + 60
    clock += 61_000
    // Remembered or not, an expired value no longer opens.
    expect(await cookies.open(value, { cache: true })).toBeNull()
    expect(await cookies.expired(value)).toEqual({ value: { id }, exp, final: true })
    clock += 3600_000
    expect(await cookies.expired(value)).toBeNull()
  })

  it('keeps secret rotation: an older secret still opens, stale; a dropped one does not', async () => {
    const id = randomId()
    const old = await cookiesFor([OLD]).idValue(id, 3600)
    expect(await cookiesFor([NEW, OLD]).open(old)).toEqual({ ref: { id }, stale: true })
    expect(await cookiesFor([NEW]).open(old)).toBeNull()
    const fresh = await cookiesFor([NEW, OLD]).idValue(id, 3600)
    expect(await cookiesFor([NEW, OLD]).open(fresh)).toEqual({ ref: { id }, stale: false })
  })

  it('still opens the older sealed form of an id, marked to be written again', async () => {
    const id = randomId()
    const sealed = await createSealer([NEW], { now }).seal({ id }, 3600)
    expect(sealed.length).toBeGreaterThan(250)
    expect(await cookiesFor([NEW]).open(sealed)).toEqual({ ref: { id }, stale: true })
  })

  it('leaves cookie-mode seals as they are', async () => {
    const session = makeSession()
    const sealed = await createSealer([NEW], { now }).seal({ session }, 3600)
    expect(await cookiesFor([NEW]).open(sealed)).toEqual({ ref: { session }, stale: false })
    expect((await cookiesFor([NEW, OLD]).open(sealed))?.stale).toBe(false)
    expect((await cookiesFor([OLD, NEW]).open(sealed))?.stale).toBe(true)
  })

  it('seals an id that is not base64url, which the compact form cannot carry', async () => {
    const value = await cookiesFor([NEW]).idValue('an id: with spaces', 3600)
    expect(value.startsWith('Fe26.2*')).toBe(true)
    expect((await cookiesFor([NEW]).open(value))?.ref).toEqual({ id: 'an id: with spaces' })
  })
})

describe('the session manager with compact id cookies', () => {
  function rig(store: SessionStore, secrets = [NEW]) {
    const sealer = createSealer(secrets)
    let lookups = 0
    const counted: SessionStore = {
      ...store,
      get: (ref) => {
        lookups++
        return store.get(ref)
      },
    }
    const sessions = createSessionManager({
      store: counted,
      sealer,
      baseUrl: 'http://bff.test',
      idleTimeoutSeconds: 3600,
      cookies: createSessionCookies(sealer, secrets),
    })
    const app = new Hono<BffEnv>()
    app.use(async (c, next) => {
      await next()
      await sessions.commit(c)
    })
    app.post('/login', async (c) => {
      await sessions.create(
        c,
        makeSession({ absoluteExpiresAt: Math.floor(Date.now() / 1000) + 7200 })
      )
      return c.text('ok')
    })
    app.get('/me', async (c) => {
      const session = await sessions.load(c)
      return session ? c.json({ id: session.id }) : c.json({ error: 'unauthenticated' }, 401)
    })
    return { app, lookups: () => lookups }
  }
  const setCookie = (res: Response) =>
    res.headers.getSetCookie().find((line) => line.startsWith('bff='))

  it('writes the compact form at login, and reads it back', async () => {
    const r = rig(memoryStore())
    const line = setCookie(await r.app.request('/login', { method: 'POST' }))!
    const value = line.slice(4, line.indexOf(';'))
    expect(value.length).toBe(77)
    const res = await r.app.request('/me', { headers: { cookie: `bff=${value}` } })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { id: string }).id).toBe(value.split('.')[0])
  })

  it('refuses a forged id before any store lookup, and clears it', async () => {
    const store = memoryStore()
    const r = rig(store)
    const victim = makeSession()
    await store.set(victim)
    // The very id of a live session, well formed, with a made-up MAC: as a store dump gives it.
    const exp = (Math.floor(Date.now() / 1000) + 3600).toString(36)
    const res = await r.app.request('/me', {
      headers: { cookie: `bff=${victim.id}.${exp}.2s0.${randomId(16)}` },
    })
    expect(res.status).toBe(401)
    expect(r.lookups()).toBe(0)
    expect(setCookie(res)).toMatch(/^bff=; Max-Age=0/)
  })

  it('answers an old sealed id cookie, and writes it again in the compact form', async () => {
    const store = memoryStore()
    const r = rig(store)
    const session = makeSession({ absoluteExpiresAt: Math.floor(Date.now() / 1000) + 7200 })
    await store.set(session)
    const legacy = await createSealer([NEW]).seal({ id: session.id }, 3600)
    const res = await r.app.request('/me', { headers: { cookie: `bff=${legacy}` } })
    expect(res.status).toBe(200)
    const line = setCookie(res)!
    expect(line.slice(4, line.indexOf(';'))).toMatch(new RegExp(`^${session.id}\\.[\\w.-]+$`))
  })

  it('writes a cookie of an older secret again under the first', async () => {
    const store = memoryStore()
    const session = makeSession({ absoluteExpiresAt: Math.floor(Date.now() / 1000) + 7200 })
    await store.set(session)
    const old = await cookiesFor([OLD]).idValue(session.id, 3600)
    const r = rig(store, [NEW, OLD])
    const res = await r.app.request('/me', { headers: { cookie: `bff=${old}` } })
    expect(res.status).toBe(200)
    const line = setCookie(res)!
    const written = line.slice(4, line.indexOf(';'))
    expect(written.startsWith(`${session.id}.`)).toBe(true)
    expect(await cookiesFor([NEW]).open(written)).toEqual({ ref: { id: session.id }, stale: false })
  })
})
