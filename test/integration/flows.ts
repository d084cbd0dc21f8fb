/** Steps several integration suites take the same way through a stack. */
import { expect } from 'vitest'
import type { Session } from '../../src/core/session/types.ts'
import { CSRF, type Stack } from './harness.ts'

/**
 * Login, a refresh (the clock moved past the token's life, one refresh grant, a new refresh
 * token), and logout: the session as it was before and after the refresh.
 */
export async function loginRefreshLogout(
  stack: Stack
): Promise<{ first: Session; refreshed: Session }> {
  const jar = stack.jar()
  expect((await stack.login(jar)).status).toBe(302)
  expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
  const first = (await stack.sessionOf(jar))!
  stack.idp.resetCounters()
  stack.advance(120)
  expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(200)
  expect(stack.idp.grants.refresh).toBe(1)
  const refreshed = (await stack.sessionOf(jar))!
  expect(refreshed.refreshToken).not.toBe(first.refreshToken)
  const user = (await (await jar.get('/bff/user', { headers: CSRF })).json()) as {
    logoutUrl: string
  }
  expect((await jar.get(user.logoutUrl)).status).toBe(302)
  expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
  return { first, refreshed }
}
