/** What a session cookie's value refers to, read as the BFF reads it (sealed session or id). */
import { createSealer } from '../../src/core/session/seal.ts'
import { createSessionCookies } from '../../src/core/session/session-cookie.ts'
import type { SessionRef } from '../../src/core/session/types.ts'

export async function openSessionCookie(value: string, secret: string): Promise<SessionRef | null> {
  const opened = await createSessionCookies(createSealer([secret]), [secret]).open(value)
  return opened?.ref ?? null
}
