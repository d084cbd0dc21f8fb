/**
 * Sessions shaped exactly like one from a real login (the template), each a different user with
 * its own random ids and tokens of the same lengths: what thousands of logins would leave, made in
 * a fraction of the time. Used for the memory count (memory.ts) and the many-sessions load
 * (sessions.ts, mint.ts).
 */
import { randomBytes } from 'node:crypto'
import type { Session } from '../src/core/session/types.ts'

/** A random base64url string as long as `like`. */
function random(like: string): string
function random(like: string | undefined): string | undefined
function random(like: string | undefined) {
  return like === undefined
    ? undefined
    : randomBytes(Math.ceil((like.length * 3) / 4) + 1)
        .toString('base64url')
        .slice(0, like.length)
}

/** The template as user `i`'s session, made now: its lifetimes as the template's, from now. */
export function cloneSession(template: Session, i: number, nowSeconds: number): Session {
  const sub = `user-${i}`
  return {
    ...template,
    id: random(template.id),
    sid: random(template.sid),
    sub,
    claims: { ...template.claims, sub, email: `${sub}@example.com` },
    idToken: random(template.idToken),
    accessToken: random(template.accessToken),
    refreshToken: random(template.refreshToken),
    createdAt: nowSeconds,
    createdAtMs: nowSeconds * 1000,
    expiresAt: nowSeconds + (template.expiresAt - template.createdAt),
    absoluteExpiresAt:
      nowSeconds + ((template.absoluteExpiresAt ?? template.expiresAt) - template.createdAt),
    accessTokenExpiresAt: nowSeconds + (template.accessTokenExpiresAt - template.createdAt),
    generation: 1,
  }
}
