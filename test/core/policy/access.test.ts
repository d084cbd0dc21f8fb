/**
 * The user checks of a route (policy/access.ts, claims.ts, step-up.ts) without I/O: claim matching
 * through the IdP's claims map, granted scopes, step-up against the one clock, and the order in
 * which a session failing several checks is answered.
 */
import { describe, expect, it } from 'vitest'
import type { ApiRoute, ClaimRequirement } from '../../../src/core/config/options.ts'
import { accessRefusal } from '../../../src/core/policy/access.ts'
import {
  claimAt,
  claimMatches,
  mappedClaims,
  normalisedClaim,
  unmetClaims,
} from '../../../src/core/policy/claims.ts'
import { meetsStepUp, stepUpLoginUrl, stepUpReturnTo } from '../../../src/core/policy/step-up.ts'
import type { Session } from '../../../src/core/session/types.ts'

const NOW = 1_800_000_000

const claims: Record<string, unknown> = {
  sub: 'alice',
  email: 'alice@example.com',
  email_verified: true,
  department: 'sales',
  groups: ['staff', 'sales'],
  realm_access: { roles: ['admin', 'user'] },
  resource_access: { shop: { roles: ['buyer'] } },
  'https://example.com/roles': ['editor'],
  'https://example.com/org': { id: 'org-7' },
  acr: 'mfa',
  auth_time: NOW - 100,
}

const session: Session = {
  id: 'id',
  sid: 'sid',
  sub: 'alice',
  claims,
  idp: 'corp',
  scope: 'openid profile email orders:read',
  accessToken: 'at',
  accessTokenExpiresAt: NOW + 300,
  createdAt: NOW - 100,
  expiresAt: NOW + 1800,
  generation: 1,
}

const route = (policy: Omit<ApiRoute, 'prefix' | 'upstream'>): ApiRoute => ({
  prefix: '/api/',
  upstream: new URL('http://127.0.0.1:1/'),
  ...policy,
})
const map = {
  claims: {
    roles: 'realm_access.roles',
    shopRoles: 'resource_access.shop.roles',
    nsRoles: 'https://example.com/roles',
    org: 'https://example.com/org.id',
    mail: 'email',
  },
}

describe('claim matching', () => {
  const meets = (name: string, required: ClaimRequirement, mapping: Record<string, string> = {}) =>
    claimMatches(normalisedClaim(claims, name, mapping), required)

  it('a string equals the claim, exactly', () => {
    expect(meets('department', 'sales')).toBe(true)
    expect(meets('department', 'Sales')).toBe(false)
    expect(meets('department', 'sale')).toBe(false)
    expect(meets('department', 'sales ')).toBe(false)
  })

  it('a boolean equals the claim, never a string that reads like it', () => {
    expect(meets('email_verified', true)).toBe(true)
    expect(meets('email_verified', false)).toBe(false)
    expect(meets('email_verified', 'true')).toBe(false)
    expect(claimMatches('true', true)).toBe(false)
    expect(claimMatches(1, true)).toBe(false)
  })

  it('an array of requirements is met by any one of them', () => {
    expect(meets('department', ['hr', 'sales'])).toBe(true)
    expect(meets('department', ['hr', 'legal'])).toBe(false)
    expect(meets('email_verified', ['yes', true])).toBe(true)
  })

  it('an array claim is met by a value it contains', () => {
    expect(meets('groups', 'sales')).toBe(true)
    expect(meets('groups', 'admin')).toBe(false)
    expect(meets('groups', ['admin', 'staff'])).toBe(true)
    expect(meets('groups', ['admin', 'owner'])).toBe(false)
    // Membership, not a substring of the joined list.
    expect(meets('groups', 'staff,sales')).toBe(false)
  })

  it('follows dot paths of the claims map into nested claims', () => {
    expect(meets('roles', 'admin', map.claims)).toBe(true)
    expect(meets('roles', 'owner', map.claims)).toBe(false)
    expect(meets('shopRoles', 'buyer', map.claims)).toBe(true)
    expect(meets('mail', 'alice@example.com', map.claims)).toBe(true)
    // Keys that contain dots themselves (namespaced claims), alone or on the way.
    expect(meets('nsRoles', 'editor', map.claims)).toBe(true)
    expect(meets('org', 'org-7', map.claims)).toBe(true)
  })

  it('without a mapping, reads the claim of the same name, never a path', () => {
    expect(meets('realm_access.roles', 'admin')).toBe(false)
    expect(normalisedClaim(claims, 'email', {})).toBe('alice@example.com')
    // A mapped name no longer reads the claim of its own name.
    expect(normalisedClaim(claims, 'email', { email: 'nowhere' })).toBeUndefined()
  })

  it('a missing claim (or a path that leads nowhere) meets nothing', () => {
    expect(meets('missing', 'x')).toBe(false)
    expect(meets('missing', false)).toBe(false)
    expect(meets('missing', ['x', true])).toBe(false)
    expect(claimAt(claims, 'realm_access.nope')).toBeUndefined()
    expect(claimAt(claims, 'email.length')).toBeUndefined()
    expect(claimAt(claims, 'groups.0')).toBeUndefined()
  })

  it('never reads the prototype', () => {
    expect(normalisedClaim(claims, 'constructor', {})).toBeUndefined()
    expect(normalisedClaim(claims, '__proto__', {})).toBeUndefined()
    expect(claimAt(claims, 'realm_access.constructor')).toBeUndefined()
    expect(normalisedClaim(claims, 'toString', { x: 'y' })).toBeUndefined()
  })

  it('unmetClaims names each requirement not met; mappedClaims gives the mapped values', () => {
    expect(
      unmetClaims(claims, { roles: 'admin', mail: 'bob@example.com', team: 'x' }, map.claims)
    ).toEqual(['mail', 'team'])
    expect(mappedClaims(claims, { ...map.claims, gone: 'a.b' })).toEqual({
      roles: ['admin', 'user'],
      shopRoles: ['buyer'],
      nsRoles: ['editor'],
      org: 'org-7',
      mail: 'alice@example.com',
    })
  })
})

describe('accessRefusal', () => {
  const check = (policy: Omit<ApiRoute, 'prefix' | 'upstream'>, s: Session = session) =>
    accessRefusal(route(policy), s, map, NOW)

  it('passes a session that meets every check, and a route without any', () => {
    expect(check({})).toBeUndefined()
    expect(
      check({
        idps: ['corp'],
        require: { roles: 'admin', email_verified: true },
        scopes: ['email', 'orders:read'],
        acr: ['mfa'],
        maxAge: 100,
      })
    ).toBeUndefined()
  })

  it('idps: only sessions of those IdPs; a session without an IdP matches none', () => {
    expect(check({ idps: ['partner'] })).toEqual({ reason: 'forbidden', key: 'idps' })
    const older = { ...session }
    delete older.idp
    expect(check({ idps: ['corp'] }, older)).toEqual({ reason: 'forbidden', key: 'idps' })
  })

  it('require: every named claim must be met', () => {
    expect(check({ require: { roles: 'admin', department: 'hr' } })).toEqual({
      reason: 'forbidden',
      key: 'require',
    })
  })

  it('scopes: granted ones only, listing every one missing', () => {
    expect(check({ scopes: ['orders:read', 'orders:write', 'admin'] })).toEqual({
      reason: 'insufficient_scope',
      key: 'scopes',
      missing: ['orders:write', 'admin'],
    })
    // No prefix or substring matches: "orders" is not "orders:read".
    expect(check({ scopes: ['orders'] })?.reason).toBe('insufficient_scope')
    const older = { ...session }
    delete older.scope
    expect(check({ scopes: ['openid'] }, older)).toMatchObject({ missing: ['openid'] })
  })

  it('acr: one of the route’s values; maxAge: auth_time within it on the given clock', () => {
    expect(check({ acr: ['hwk', 'mfa'] })).toBeUndefined()
    expect(check({ acr: ['hwk'] })).toEqual({
      reason: 'step_up_required',
      key: 'acr',
      stepUp: { acr: ['hwk'], maxAge: undefined },
    })
    expect(check({ maxAge: 100 })).toBeUndefined()
    expect(check({ maxAge: 99 })).toEqual({
      reason: 'step_up_required',
      key: 'maxAge',
      stepUp: { acr: undefined, maxAge: 99 },
    })
    expect(check({ acr: ['mfa'], maxAge: 99 })?.key).toBe('maxAge')
    expect(check({ acr: ['hwk'], maxAge: 99 })?.key).toBe('acr')
  })

  it('step-up fails closed on missing or odd claims', () => {
    const without = { ...session, claims: { sub: 'alice' } }
    expect(check({ acr: ['mfa'] }, without)?.reason).toBe('step_up_required')
    expect(check({ maxAge: 3600 }, without)?.reason).toBe('step_up_required')
    const odd = { ...session, claims: { acr: ['mfa'], auth_time: String(NOW) } }
    expect(check({ acr: ['mfa'] }, odd)?.reason).toBe('step_up_required')
    expect(check({ maxAge: 3600 }, odd)?.reason).toBe('step_up_required')
  })

  it('answers the first check failed: idps, require, scopes, then step-up', () => {
    const all = {
      idps: ['partner'],
      require: { roles: 'owner' },
      scopes: ['x'],
      acr: ['hwk'],
    }
    expect(check(all)?.key).toBe('idps')
    expect(check({ ...all, idps: ['corp'] })?.key).toBe('require')
    expect(check({ ...all, idps: ['corp'], require: {} })?.key).toBe('scopes')
    expect(check({ ...all, idps: ['corp'], require: {}, scopes: [] })?.key).toBe('acr')
  })
})

describe('step-up answers', () => {
  it('stepUpLoginUrl: returnTo, acr space-separated, maxAge', () => {
    expect(stepUpLoginUrl('/reports?x=1', { acr: ['mfa', 'hwk'], maxAge: 300 })).toBe(
      '/bff/login?returnTo=%2Freports%3Fx%3D1&acr=mfa+hwk&maxAge=300'
    )
    expect(stepUpLoginUrl('/', { maxAge: 0 })).toBe('/bff/login?returnTo=%2F&maxAge=0')
    expect(stepUpLoginUrl('/', { acr: ['urn:a b'] })).toBe('/bff/login?returnTo=%2F&acr=urn%3Aa+b')
  })

  it('stepUpReturnTo: the Referer’s path on this origin, else /', () => {
    const base = 'https://app.example.com'
    expect(stepUpReturnTo('https://app.example.com/orders/7?tab=2', base)).toBe('/orders/7?tab=2')
    expect(stepUpReturnTo(undefined, base)).toBe('/')
    expect(stepUpReturnTo('not a url', base)).toBe('/')
    expect(stepUpReturnTo('https://evil.example/orders', base)).toBe('/')
    expect(stepUpReturnTo('http://app.example.com/orders', base)).toBe('/')
    expect(stepUpReturnTo('https://app.example.com:8443/x', base)).toBe('/')
    // A path a browser would read as another host is never a place to return to.
    expect(stepUpReturnTo('https://app.example.com//evil.example/', base)).toBe('/')
    expect(stepUpReturnTo('https://app.example.com/%2F%2Fevil.example', base)).toBe('/')
  })

  it('meetsStepUp: auth_time exactly maxAge ago still passes, one second more does not', () => {
    const at = { auth_time: NOW - 300 }
    expect(meetsStepUp(at, { maxAge: 300 }, NOW)).toBe(true)
    expect(meetsStepUp(at, { maxAge: 300 }, NOW + 1)).toBe(false)
    expect(meetsStepUp({}, {}, NOW)).toBe(true)
  })
})
