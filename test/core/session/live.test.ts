import { describe, expect, it } from 'vitest'
import {
  createLiveSessions,
  endsSession,
  inProcessBus,
  sessionEndOf,
  type SessionEndReason,
} from '../../../src/core/session/live.ts'
import type { Session } from '../../../src/core/session/types.ts'

const session = (id: string, extra: Partial<Session> = {}): Session => ({
  id,
  sid: `sid-${id}`,
  sub: `sub-${id}`,
  claims: {},
  accessToken: 'at',
  accessTokenExpiresAt: 0,
  createdAt: 0,
  expiresAt: 0,
  generation: 1,
  ...extra,
})

describe('live sessions', () => {
  it('tells an end to the connections of the session it names, and only those', async () => {
    const bus = inProcessBus()
    const live = createLiveSessions({ bus, maxPerSession: 4, maxPerInstance: 10 })
    const ended: string[] = []
    const watch = (s: Session, tag: string) =>
      live.open(s, (reason: SessionEndReason) => ended.push(`${tag}:${reason}`))
    watch(session('a'), 'a1')
    watch(session('a'), 'a2')
    watch(session('b', { idp: 'corp', sub: 'u' }), 'b')
    watch(session('c', { idp: 'partner', sub: 'u' }), 'c')
    await bus.publish({ reason: 'logout', id: 'a' })
    expect(ended).toEqual(['a1:logout', 'a2:logout'])
    await bus.publish({ reason: 'admin_revoke', sub: 'u', idp: 'corp' })
    expect(ended).toEqual(['a1:logout', 'a2:logout', 'b:admin_revoke'])
    await bus.publish({ reason: 'backchannel_logout', sid: 'sid-c' })
    expect(ended.at(-1)).toBe('c:backchannel_logout')
    // Each is told once: a repeated end finds nothing left.
    await bus.publish({ reason: 'logout', id: 'a' })
    expect(ended).toHaveLength(4)
    expect(live.size).toBe(0)
  })

  it('refuses past the per-session and per-instance limits, and a released lease frees its place', () => {
    const live = createLiveSessions({ bus: inProcessBus(), maxPerSession: 2, maxPerInstance: 3 })
    const first = live.open(session('a'), () => {})
    live.open(session('a'), () => {})
    expect(live.open(session('a'), () => {})).toEqual({ refused: 'session_limit' })
    live.open(session('b'), () => {})
    expect(live.open(session('c'), () => {})).toEqual({ refused: 'instance_limit' })
    if ('release' in first) first.release()
    expect(live.size).toBe(2)
    expect('release' in live.open(session('c'), () => {})).toBe(true)
  })

  it('matches an IdP end only to sessions of that IdP, and sessions without a recorded IdP to any', () => {
    expect(
      endsSession(
        { reason: 'logout', sub: 'u', idp: 'corp' },
        session('x', { sub: 'u', idp: 'partner' })
      )
    ).toBe(false)
    expect(
      endsSession({ reason: 'logout', sub: 'u', idp: 'corp' }, session('x', { sub: 'u' }))
    ).toBe(true)
    expect(endsSession({ reason: 'logout', sid: 'sid-x' }, session('x', { idp: 'corp' }))).toBe(
      true
    )
  })
})

describe('live sessions: expiry', () => {
  /** A registry on a clock the test moves, ticking every 10 ms. */
  function setup(options: Partial<Parameters<typeof createLiveSessions>[0]> = {}) {
    let t = 1_000_000_000_000
    const expired: string[] = []
    const live = createLiveSessions({
      bus: inProcessBus(),
      maxPerSession: 4,
      maxPerInstance: 10,
      now: () => t,
      tickMs: 10,
      warnSeconds: 60,
      onExpired: (s, kind) => void expired.push(`${s.id}:${kind}`),
      ...options,
    })
    const at = (seconds: number) => t / 1000 + seconds
    return { live, expired, at, advance: (seconds: number) => (t += seconds * 1000) }
  }
  const settle = () => new Promise((resolve) => setTimeout(resolve, 80))

  it('ends connections at the absolute lifetime, after telling them it is near', async () => {
    const { live, expired, at, advance } = setup()
    const events: string[] = []
    const s = session('a', { expiresAt: at(600), absoluteExpiresAt: at(900) })
    live.open(s, (reason) => events.push(reason), {
      onExpiring: (when) => events.push(`expiring:${when}`),
    })
    advance(800)
    live.touch({ ...s, expiresAt: at(100) }) // slid: still alive at 800 s
    await settle()
    expect(events).toEqual([])
    advance(45) // 55 s before the end
    await settle()
    expect(events).toEqual([`expiring:${s.absoluteExpiresAt}`])
    advance(60)
    await settle()
    expect(events).toEqual([`expiring:${s.absoluteExpiresAt}`, 'session_expired'])
    expect(expired).toEqual(['a:absolute_lifetime'])
    expect(live.size).toBe(0)
  })

  it('at the idle deadline asks the store again: a slid session keeps its connections', async () => {
    let stored: Session | null = null
    const asked: string[] = []
    const { live, expired, at, advance } = setup({
      recheck: async (s) => {
        asked.push(s.id)
        return stored
      },
    })
    const ended: string[] = []
    const s = session('a', { expiresAt: at(600), absoluteExpiresAt: at(3600) })
    live.open(s, (reason) => ended.push(reason))
    await settle()
    expect(asked).toEqual([])
    advance(601)
    stored = { ...s, expiresAt: at(300) } // another instance slid it
    await settle()
    expect(asked).toEqual(['a'])
    expect(ended).toEqual([])
    advance(200)
    await settle()
    expect(asked).toEqual(['a']) // the new deadline is not reached yet
    advance(101)
    stored = null // gone from the store: expired
    await settle()
    expect(ended).toEqual(['session_expired'])
    expect(expired).toEqual(['a:idle_timeout'])
  })

  it('when the store cannot tell, asks connections that can to come back, ends the others', async () => {
    const { live, expired, at, advance } = setup({ recheck: async () => undefined })
    const told: string[] = []
    const s = session('a', { expiresAt: at(600), absoluteExpiresAt: at(3600) })
    live.open(s, (reason) => told.push(`stream:${reason}`), {
      onRecheck: () => told.push('stream:recheck'),
    })
    live.open(s, (reason) => told.push(`socket:${reason}`))
    advance(601)
    await settle()
    expect(told.sort()).toEqual(['socket:session_expired', 'stream:recheck'])
    expect(expired).toEqual([]) // not known to have expired: nothing to write down
    expect(live.size).toBe(0)
  })

  it('keeps the connections while the store cannot be asked, and asks again later', async () => {
    let down = true
    const { live, at, advance } = setup({
      retryMs: 50,
      recheck: async () => {
        if (down) throw new Error('store down')
        return null
      },
    })
    const ended: string[] = []
    live.open(session('a', { expiresAt: at(600), absoluteExpiresAt: at(3600) }), (r) =>
      ended.push(r)
    )
    advance(601)
    await settle()
    expect(ended).toEqual([])
    down = false
    await settle()
    expect(ended).toEqual([]) // not before retryMs
    advance(0.05)
    await settle()
    expect(ended).toEqual(['session_expired'])
  })

  it('stops its timer with the last connection', async () => {
    const { live, at } = setup()
    const lease = live.open(session('a', { expiresAt: at(600) }), () => {})
    if ('release' in lease) lease.release()
    expect(live.size).toBe(0)
    live.close()
  })
})

describe('session ends over a wire', () => {
  it('accepts the three shapes and refuses anything else', () => {
    expect(sessionEndOf({ reason: 'logout', id: 'x' })).toEqual({ reason: 'logout', id: 'x' })
    expect(sessionEndOf({ reason: 'admin_revoke', sub: 'u', idp: 'corp' })).toEqual({
      reason: 'admin_revoke',
      sub: 'u',
      idp: 'corp',
    })
    for (const bad of [
      null,
      'logout',
      { reason: 'logout' },
      { reason: 'nope', id: 'x' },
      { reason: 'logout', id: 'x', sid: 'y' },
      { reason: 'logout', id: 5 },
      { reason: 'logout', id: '' },
      { reason: 'logout', sub: 'u', idp: 7 },
    ]) {
      expect(sessionEndOf(bad)).toBeNull()
    }
  })
})
