/**
 * A session compacted to fit the cookie (no server store) keeps what route policies read: `acr`,
 * `auth_time` and the claims on the way to a `require`'s path. Else a route would refuse a user
 * because of the size of their cookie.
 */
import { describe, expect, it } from 'vitest'
import { compactSession } from '../../../src/core/session/manager.ts'
import type { Session } from '../../../src/core/session/types.ts'

const session: Session = {
  id: 'id',
  sid: 'sid',
  sub: 'alice',
  claims: {
    sub: 'alice',
    email: 'alice@example.com',
    acr: 'mfa',
    auth_time: 1_800_000_000,
    realm_access: { roles: ['admin'] },
    department: 'sales',
    groups: Array.from({ length: 500 }, (_, i) => `group-${i}`),
  },
  idToken: 'x'.repeat(2000),
  accessToken: 'at',
  accessTokenExpiresAt: 1,
  createdAt: 1,
  expiresAt: 2,
  generation: 1,
}

describe('compactSession', () => {
  it('keeps the step-up claims and those route policies read; drops the rest and the ID token', () => {
    const compact = compactSession(session, ['realm_access.roles', 'department'])
    expect(compact.claims).toEqual({
      sub: 'alice',
      email: 'alice@example.com',
      acr: 'mfa',
      auth_time: 1_800_000_000,
      realm_access: { roles: ['admin'] },
      department: 'sales',
    })
    expect(compact.idToken).toBeUndefined()
    expect(compactSession(session).claims.realm_access).toBeUndefined()
    // A path is not a prefix of a longer key: "depart" keeps nothing.
    expect(compactSession(session, ['depart']).claims.department).toBeUndefined()
  })
})
