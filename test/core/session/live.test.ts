import { describe, expect, it } from 'vitest'
import {
  createLiveSessions,
  endsSession,
  inProcessBus,
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
