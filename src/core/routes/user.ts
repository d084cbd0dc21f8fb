/** `GET /bff/user`: who is logged in. Never returns a token. */
import { Hono } from 'hono'
import { BffError } from '../errors.ts'
import { userClaims } from '../oidc.ts'
import { csrfGuard } from '../security.ts'
import type { BffEnv } from '../session/manager.ts'
import type { BffServices } from '../services.ts'

export interface UserInfo {
  sub: string
  claims: Record<string, unknown>
  /** When the session ends at the latest, in epoch seconds. */
  expiresAt: number
  /** Same-origin URL that logs this session out (GET; carries the session's `sid`). */
  logoutUrl: string
}

export function userRoute(s: BffServices) {
  return new Hono<BffEnv>().get('/bff/user', csrfGuard(), async (c) => {
    const session = await s.sessions.load(c)
    if (!session) throw new BffError(401, 'unauthenticated', 'Not logged in.')
    const body: UserInfo = {
      sub: session.sub,
      claims: userClaims(session.claims),
      expiresAt: session.expiresAt,
      logoutUrl: `/bff/logout?sid=${encodeURIComponent(session.sid)}`,
    }
    c.header('Cache-Control', 'no-store')
    return c.json(body)
  })
}
