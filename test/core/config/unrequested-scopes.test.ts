/**
 * A route whose `scopes` no login asks for is said at start-up (`config.scopes_not_requested`):
 * such a route most often answers 403 `insufficient_scope` to every user, and nothing else says why.
 */
import { describe, expect, it } from 'vitest'
import { createBff, type BffOptions } from '../../../src/index.ts'
import { unrequestedScopes } from '../../../src/core/config/unrequested-scopes.ts'
import { resolveOptions } from '../../../src/core/config/resolve.ts'

const base: BffOptions = {
  baseUrl: 'https://app.example.com',
  sessionSecret: 'a-session-secret-of-at-least-32-characters!',
  idps: {
    corp: {
      issuer: 'https://corp.example.com',
      clientId: 'bff',
      clientSecret: 'corp-secret-value',
      scopes: 'openid profile orders:read',
    },
    partner: {
      issuer: 'https://partner.example.com',
      clientId: 'bff',
      clientSecret: 'partner-secret-value',
      scopes: 'openid profile',
    },
  },
  routes: [
    { prefix: '/api/orders/', upstream: 'https://orders.example/', scopes: ['orders:read'] },
    {
      prefix: '/api/corp/',
      upstream: 'https://corp-api.example/',
      idps: ['corp'],
      scopes: ['orders:read'],
    },
    {
      prefix: '/api/reports/',
      upstream: 'https://reports.example/',
      scopes: ['reports', 'profile'],
    },
    { prefix: '/api/jobs/', upstream: 'https://jobs.example/', token: 'client', scopes: ['jobs'] },
  ],
} as BffOptions

describe('routes whose scopes the login does not ask for', () => {
  it('names each route and IdP with the scopes missing, skipping IdPs the route refuses and client routes', () => {
    // Routes in matching order (longest prefix first), IdPs in configured order.
    expect(unrequestedScopes(resolveOptions(base))).toEqual([
      { route: '/api/reports/', idp: 'corp', scopes: ['reports'] },
      { route: '/api/reports/', idp: 'partner', scopes: ['reports'] },
      { route: '/api/orders/', idp: 'partner', scopes: ['orders:read'] },
    ])
  })

  it('says so once at start-up, as a warning, and starts', () => {
    const lines: { level: string; event: string; fields?: unknown }[] = []
    createBff(base, { log: (level, event, fields) => void lines.push({ level, event, fields }) })
    const warned = lines.filter((line) => line.event === 'config.scopes_not_requested')
    expect(warned).toHaveLength(3)
    expect(warned.every((line) => line.level === 'warn')).toBe(true)
    expect(warned[2]!.fields).toEqual({
      route: '/api/orders/',
      idp: 'partner',
      scopes: 'orders:read',
    })
  })

  it('says nothing when every route scope is asked for', () => {
    const lines: string[] = []
    createBff(
      {
        ...base,
        routes: [{ prefix: '/api/', upstream: 'https://api.example/', scopes: ['profile'] }],
      },
      { log: (_level, event) => void lines.push(event) }
    )
    expect(lines).not.toContain('config.scopes_not_requested')
  })
})
