/** What a session cookie's value refers to, read as the BFF reads it (sealed session or id). */
import { createSealer } from '../../src/core/session/seal.ts'
import { createSessionCookies } from '../../src/core/session/session-cookie.ts'
import type { SessionRef } from '../../src/core/session/types.ts'
import type { CookieJar } from './http.ts'

export async function openSessionCookie(value: string, secret: string): Promise<SessionRef | null> {
  const opened = await createSessionCookies(createSealer([secret]), [secret]).open(value)
  return opened?.ref ?? null
}

/** The access token in the jar's session cookie (the `cookie` store), its chunks joined, opened with `secret`. */
export async function accessTokenOf(
  jar: CookieJar,
  origin: string,
  secret: string
): Promise<string> {
  const cookies = jar.cookies(origin)
  let sealed = cookies.bff!
  for (let i = 1; cookies[`bff.${i}`]; i++) sealed += cookies[`bff.${i}`]
  const ref = await openSessionCookie(sealed, secret)
  if (!ref || !('session' in ref)) throw new Error('no cookie session in the jar')
  return ref.session.accessToken
}
