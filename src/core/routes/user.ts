/** `GET /bff/user`: who is logged in. Never returns a token. */
import { Hono } from 'hono'
import { BffError } from '../errors.ts'
import { userClaims } from '../oidc/id-token.ts'
import { csrfGuard } from '../policy/csrf.ts'
import type { BffEnv } from '../hono-env.ts'
import type { BffServices } from '../services.ts'
import { freshSession } from './fresh-session.ts'

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
    let session = await s.sessions.load(c)
    if (!session) throw new BffError(401, 'unauthenticated', 'Not logged in.')
    // The SPA asks here whether it must log in. A session whose token is due is refreshed now, as
    // the next API call would: if the IdP refuses its refresh token, answering 200 would leave
    // the SPA logged in with every API call failing. The grant is not wasted: the next call uses
    // its tokens. A transient IdP failure keeps the session (it is still valid) and answers 200.
    const result = await freshSession(s, c, session)
    if (result.kind === 'refreshed') session = result.session
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
