/**
 * The server stores' session-id cookie: `<id>.<mac>`, 66 bytes. A forged, altered or foreign value
 * opens to nothing (and, in the manager, costs no store lookup); the older sealed form still opens
 * and is marked for writing again; secret rotation keeps its meaning.
 */
import { Hono } from 'hono'
import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import type { BffEnv } from '../../../src/core/hono-env.ts'
import { createSessionManager } from '../../../src/core/session/manager.ts'
import { createSealer } from '../../../src/core/session/seal.ts'
import { createSessionCookies, type Hmac } from '../../../src/core/session/session-cookie.ts'
import { memoryStore } from '../../../src/core/session/stores/memory.ts'
import type { SessionStore } from '../../../src/core/session/types.ts'
import { makeSession, randomId } from '../../../src/testing/sessions.ts'

const NEW = 'new-secret-0123456789-abcdefghijklmnop'
const OLD = 'old-secret-0123456789-abcdefghijklmnop'

const cookiesFor = (secrets: string[], hmac?: Hmac) =>
  createSessionCookies(createSealer(secrets), secrets, { hmac })

const nodeHmac: Hmac = (secret, message) =>
  new Uint8Array(createHmac('sha256', secret).update(message).digest())

describe('the compact session-id cookie', () => {
  it('is the id and a 128-bit MAC: 66 characters, cookie-safe', async () => {
    const id = randomId()
    const value = await cookiesFor([NEW]).idValue(id, 3600)
    expect(value).toMatch(/^[\w-]{43}\.[\w-]{22}$/)
    expect(value.length).toBe(66)
    expect(value.startsWith(`${id}.`)).toBe(true)
    expect(await cookiesFor([NEW]).open(value)).toEqual({ ref: { id }, stale: false })
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
    const value = await cookies.idValue(id, 3600)
    const [, mac] = value.split('.') as [string, string]
    const flip = (text: string, at: number) =>
      text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1)
    for (const forged of [
      `${randomId()}.${randomId(16)}`, // a guess
      `${randomId()}.${mac}`, // another id with this MAC
      `${flip(id, 0)}.${mac}`,
      `${id}.${flip(mac, 21)}`,
      `${id}.${flip(mac, 0)}`,
      `${id}.${mac.slice(0, 21)}`,
      `${id}.${mac}A`,
      `${id}`,
      await cookiesFor([OLD]).idValue(id, 3600), // another secret's
      '',
      '.',
    ]) {
      expect(await cookies.open(forged), forged).toBeNull()
    }
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
    const sealed = await createSealer([NEW]).seal({ id }, 3600)
    expect(sealed.length).toBeGreaterThan(250)
    expect(await cookiesFor([NEW]).open(sealed)).toEqual({ ref: { id }, stale: true })
  })

  it('leaves cookie-mode seals as they are', async () => {
    const session = makeSession()
    const sealed = await createSealer([NEW]).seal({ session }, 3600)
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
    expect(value.length).toBe(66)
    const res = await r.app.request('/me', { headers: { cookie: `bff=${value}` } })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { id: string }).id).toBe(value.split('.')[0])
  })

  it('refuses a forged id before any store lookup, and clears it', async () => {
    const store = memoryStore()
    const r = rig(store)
    const victim = makeSession()
    await store.set(victim)
    // The very id of a live session, with a made-up MAC: as a store dump would give it.
    const res = await r.app.request('/me', {
      headers: { cookie: `bff=${victim.id}.${randomId(16)}` },
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
    expect(line.slice(4, line.indexOf(';'))).toMatch(new RegExp(`^${session.id}\\.[\\w-]{22}$`))
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
    expect(line.slice(4, line.indexOf(';'))).toBe(await cookiesFor([NEW]).idValue(session.id, 1))
  })
})
