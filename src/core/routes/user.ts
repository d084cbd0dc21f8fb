/** `GET /bff/user`: who is logged in. Never returns a token. */
import { Hono } from 'hono'
import { BffError } from '../errors.ts'
import { userClaims } from '../oidc/id-token.ts'
import { mappedClaims } from '../policy/claims.ts'
import { csrfGuard } from '../policy/csrf.ts'
import type { BffEnv } from '../hono-env.ts'
import type { BffServices } from '../services.ts'
import { freshSession } from './fresh-session.ts'

export interface UserInfo {
  sub: string
  /** The IdP the session came from (absent for sessions from before it was recorded). */
  idp?: string
  /** The user's claims: the ID token's and userinfo's (no protocol claims), plus each mapped one. */
  claims: Record<string, unknown>
  /** How the user authenticated (the ID token's `acr`), when the IdP says. */
  acr?: string
  /** When the user authenticated, in epoch seconds (the ID token's `auth_time`), when the IdP says. */
  authTime?: number
  /** When the session ends at the latest, in epoch seconds. */
  expiresAt: number
  /** Same-origin URL that logs this session out (GET; carries the session's `sid`). */
  logoutUrl: string
}

export function userRoute(s: BffServices) {
  return new Hono<BffEnv>().get('/bff/user', csrfGuard(s.audit), async (c) => {
    let session = await s.sessions.load(c)
    if (!session) throw new BffError(401, 'unauthenticated', 'Not logged in.')
    // The SPA asks here whether it must log in. A session whose token is due is refreshed now, as
    // the next API call would: if the IdP refuses its refresh token, answering 200 would leave
    // the SPA logged in with every API call failing. The grant is not wasted: the next call uses
    // its tokens. A transient IdP failure keeps the session (it is still valid) and answers 200.
    const result = await freshSession(s, c, session)
    if (result.kind === 'refreshed') session = result.session
    const { acr, auth_time: authTime } = session.claims
    const body: UserInfo = {
      sub: session.sub,
      idp: session.idp,
      claims: {
        ...userClaims(session.claims),
        // Through the claims map of the IdP the session came from.
        ...mappedClaims(session.claims, s.idps.of(session)?.config.claims ?? {}),
      },
      acr: typeof acr === 'string' ? acr : undefined,
      authTime: typeof authTime === 'number' ? authTime : undefined,
      expiresAt: session.expiresAt,
      logoutUrl: `/bff/logout?sid=${encodeURIComponent(session.sid)}`,
    }
    c.header('Cache-Control', 'no-store')
    return c.json(body)
  })
}
