/** Sessions for the contract suites: realistic, with fresh random ids and tokens. */
import type { Session } from '../core/session/types.ts'

const nowSeconds = () => Math.floor(Date.now() / 1000)

export function randomId(bytes = 32): string {
  const raw = crypto.getRandomValues(new Uint8Array(bytes))
  return btoa(String.fromCharCode(...raw))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '')
}

/** A realistic session with fresh random ids and tokens, valid for an hour. */
export function makeSession(overrides: Partial<Session> = {}): Session {
  const now = nowSeconds()
  return {
    id: randomId(),
    sid: crypto.randomUUID(),
    sub: `user-${crypto.randomUUID()}`,
    claims: {
      name: 'Ada Lovelace',
      email: 'ada@example.com',
      email_verified: true,
      groups: ['admins', 'engineers'],
      address: { locality: 'London', country: 'GB' },
    },
    idToken: `eyJhbGciOiJSUzI1NiJ9.${randomId(96)}.${randomId(64)}`,
    accessToken: randomId(48),
    refreshToken: randomId(48),
    accessTokenExpiresAt: now + 300,
    createdAt: now,
    expiresAt: now + 3600,
    generation: 1,
    ...overrides,
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
