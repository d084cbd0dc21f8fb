/**
 * The demo IdP's accounts: the account id is the login name. User `demo` signs in with password
 * `demo`; any other name (letters, digits, `._@+-`, up to 64 characters) signs in with password
 * `pass`, so tests can create as many users as they like.
 */

export const DEMO_USER = { login: 'demo', password: 'demo' } as const

const LOGIN_NAME = /^[\w.@+-]{1,64}$/

/** Password rule of the demo: `demo`/`demo`, any other valid name with `pass`. */
export function checkPassword(login: string, password: string): boolean {
  if (!LOGIN_NAME.test(login)) return false
  return password === (login === DEMO_USER.login ? DEMO_USER.password : 'pass')
}

/** The standard claims of an account; `extra` (the IdP's `extraProfileClaims`) is added to each. */
export function claimsOf(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sub: id,
    name: id === DEMO_USER.login ? 'Demo User' : id,
    email: `${id.toLowerCase()}@example.com`,
    email_verified: true,
    ...extra,
  }
}
