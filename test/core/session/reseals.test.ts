/**
 * Re-sealing storms: once a session is older than its touch interval, requests that still carry
 * the previous cookie (a client that ignores Set-Cookie, requests in flight when it changed) slide
 * it and get a new cookie. The same presented cookie must cost one seal, not one per request,
 * without handing out an older generation than the newest known. Seals are counted at the sealer.
 */
import { Hono } from 'hono'
import { beforeEach, describe, expect, it } from 'vitest'
import type { BffEnv } from '../../../src/core/hono-env.ts'
import { createSessionManager, type SessionManager } from '../../../src/core/session/manager.ts'
import { unpackRef } from '../../../src/core/session/packed-session.ts'
import { resealCache } from '../../../src/core/session/reseals.ts'
import { createSealer, type SealOptions, type Sealer } from '../../../src/core/session/seal.ts'
import { cookieStore } from '../../../src/core/session/stores/cookie.ts'
import type { Session, SessionStore } from '../../../src/core/session/types.ts'
import { makeSession } from '../../../src/testing/sessions.ts'

const SECRET = 'reseal-secret-0123456789-abcdefghijklmnop'
const IDLE = 3600 // touch interval: 60 s

let clock: number
const now = () => clock

/** A sealer that counts the seals it makes. */
function countingSealer(secrets: string[] = [SECRET]): Sealer & { seals: number } {
  const inner = createSealer(secrets, { now })
  const counted = {
    seals: 0,
    seal: (data: object, ttl: number, options?: SealOptions) => {
      counted.seals++
      return inner.seal(data, ttl, options)
    },
    unseal: inner.unseal,
    expired: inner.expired,
    isStale: inner.isStale,
  }
  return counted
}

interface Rig {
  app: Hono<BffEnv>
  sealer: ReturnType<typeof countingSealer>
  sessions: SessionManager
  /** The newest generation this instance knows, as the token manager would answer it. */
  newer: Map<string, Session>
}

function rig(store: SessionStore = cookieStore({ now }), sealer = countingSealer()): Rig {
  const newer = new Map<string, Session>()
  const sessions = createSessionManager({
    store,
    sealer,
    baseUrl: 'http://bff.test',
    idleTimeoutSeconds: IDLE,
    newest: (session) => {
      const known = newer.get(session.id)
      return known && known.generation > session.generation ? known : session
    },
    now,
  })
  const app = new Hono<BffEnv>()
  app.use(async (c, next) => {
    await next()
    await sessions.commit(c)
  })
  app.post('/login', async (c) => {
    const t = Math.floor(now() / 1000)
    const lifetime = { createdAt: t, expiresAt: t + IDLE, absoluteExpiresAt: t + 12 * 3600 }
    await sessions.create(c, makeSession(lifetime))
    return c.text('ok')
  })
  app.get('/me', async (c) => {
    const session = await sessions.load(c)
    if (!session) return c.json({ error: 'unauthenticated' }, 401)
    return c.json({ sub: session.sub, generation: session.generation, exp: session.expiresAt })
  })
  return { app, sealer, sessions, newer }
}

/** The session cookie's value in a response's Set-Cookie lines (one chunk: small sessions). */
function setCookieValue(res: Response): string | undefined {
  const line = res.headers.getSetCookie().find((l) => l.startsWith('bff='))
  return line?.slice(4, line.indexOf(';'))
}

async function login(r: Rig): Promise<string> {
  const res = await r.app.request('/login', { method: 'POST' })
  return setCookieValue(res)!
}

const me = (r: Rig, cookie: string) =>
  r.app.request('/me', { headers: { cookie: `bff=${cookie}` } })

beforeEach(() => {
  clock = Date.UTC(2026, 11, 1, 12)
})

describe('a stale cookie presented again and again', () => {
  it('costs one seal, in sequence: the first answer carries the new cookie, the rest none', async () => {
    const r = rig()
    const old = await login(r)
    expect(r.sealer.seals).toBe(1)
    clock += 120_000 // past the touch interval
    const sent: Array<string | undefined> = []
    for (let i = 0; i < 20; i++) {
      const res = await me(r, old)
      expect(res.status).toBe(200)
      sent.push(setCookieValue(res))
      clock += 1000
    }
    expect(r.sealer.seals).toBe(2)
    const fresh = sent[0]
    expect(fresh).toBeDefined()
    expect(sent.slice(1)).toEqual(sent.slice(1).map(() => undefined))
    // The new cookie works, and carries the slid expiry.
    const res = await me(r, fresh!)
    expect(res.status).toBe(200)
    expect(((await res.json()) as { exp: number }).exp).toBe(Math.floor(clock / 1000) - 20 + IDLE)
  })

  it('costs one seal when the requests come at once', async () => {
    const r = rig()
    const old = await login(r)
    clock += 120_000
    const answers = await Promise.all(Array.from({ length: 30 }, () => me(r, old)))
    expect(answers.every((res) => res.status === 200)).toBe(true)
    // Those already in flight when the first was answered carry the same cookie, at most.
    const sent = answers.map(setCookieValue).filter((value) => value !== undefined)
    expect(sent.length).toBeGreaterThan(0)
    expect(new Set(sent).size).toBe(1)
    expect(r.sealer.seals).toBe(2)
  })

  it('keeps a client that ignores Set-Cookie working, with one seal per touch interval', async () => {
    const r = rig()
    const old = await login(r)
    const values = new Set<string>()
    // 10 minutes of a request every 5 s with the login's cookie: the session slides on, each
    // slide sealed once and handed to every request of the next minute.
    for (let i = 0; i < 120; i++) {
      clock += 5000
      const res = await me(r, old)
      expect(res.status).toBe(200)
      const value = setCookieValue(res)
      if (value) values.add(value)
    }
    expect(r.sealer.seals).toBeLessThanOrEqual(1 + 10)
    expect(values.size).toBe(r.sealer.seals - 1)
  })

  it('never hands out the remembered cookie once a newer generation is known', async () => {
    const r = rig()
    const old = await login(r)
    clock += 120_000
    const first = setCookieValue(await me(r, old))!
    expect(setCookieValue(await me(r, old))).toBeUndefined()
    const session = (await r.sessions.store.get({ session: (await openSession(r, first))! }))!
    // A refresh on this instance: generation 2.
    r.newer.set(session.id, { ...session, generation: 2, accessToken: 'refreshed' })
    const res = await me(r, old)
    const second = setCookieValue(res)!
    expect(second).not.toBe(first)
    expect((await openSession(r, second))!.generation).toBe(2)
    // And that one is shared in turn.
    expect(setCookieValue(await me(r, old))).toBe(second)
  })

  it('still refuses the cookie once the session is ended', async () => {
    const r = rig()
    const old = await login(r)
    clock += 120_000
    expect((await me(r, old)).status).toBe(200)
    const session = (await openSession(r, old))!
    await r.sessions.store.delete(session)
    const res = await me(r, old)
    expect(res.status).toBe(401)
  })

  it('re-seals an old secret’s cookie once with the new secret', async () => {
    const before = rig(undefined, countingSealer(['old-secret-0123456789-abcdefghijklmnop']))
    const old = await login(before)
    const r = rig(undefined, countingSealer([SECRET, 'old-secret-0123456789-abcdefghijklmnop']))
    const answers = await Promise.all(Array.from({ length: 10 }, () => me(r, old)))
    expect(answers.every((res) => res.status === 200)).toBe(true)
    expect(new Set(answers.map(setCookieValue)).size).toBe(1)
    expect(r.sealer.seals).toBe(1)
    expect(await r.sealer.isStale(setCookieValue(answers[0]!)!)).toBe(false)
  })

  it('stays within its bounds', () => {
    const cache = resealCache({ maxEntries: 3 })
    const t = Math.floor(clock / 1000)
    const sessions = Array.from({ length: 5 }, () => makeSession({ expiresAt: t + IDLE }))
    sessions.forEach((session, i) => cache.start(`presented-${i}`, session))
    expect(cache.find('presented-0', sessions[0]!, t + IDLE, 60)).toBeUndefined()
    expect(cache.find('presented-4', sessions[4]!, t + IDLE, 60)?.session).toEqual(sessions[4])
    // Another session presenting the same cookie text is not answered.
    expect(cache.find('presented-4', sessions[3]!, t + IDLE, 60)).toBeUndefined()
    // Nor once due for sliding again.
    expect(cache.find('presented-4', sessions[4]!, t + IDLE + 60, 60)).toBeUndefined()
  })
})

async function openSession(r: Rig, cookie: string): Promise<Session | null> {
  const ref = unpackRef(await r.sealer.unseal<object>(cookie))
  return ref && 'session' in ref ? ref.session : null
}
