/**
 * `GET /bff/logout?sid=…` (a link from `/bff/user`'s `logoutUrl`) or `POST /bff/logout` with
 * `X-CSRF: 1`; either with `?idp=<name>` for when the session is already gone and several IdPs
 * are configured. The `sid` makes a GET logout unforgeable: a cross-site `<img src=/bff/logout>` cannot
 * know it. Ends the session, revokes the refresh token, clears the cookie and sends the browser to
 * the IdP's end-session endpoint.
 */
import { Hono, type Context } from 'hono'
import { BffError } from '../errors.ts'
import { errorReason, subjectHash } from '../observe/log.ts'
import { traceOf } from '../observe/spans.ts'
import { constantTimeEqual } from '../policy/constant-time.ts'
import { cookieNames, isSecureOrigin } from '../session/cookie-names.ts'
import { csrfGuard } from '../policy/csrf.ts'
import { appendSetCookie, serializeCookie } from '../session/cookie.ts'
import type { BffEnv } from '../hono-env.ts'
import type { Session } from '../session/types.ts'
import type { BffServices } from '../services.ts'
import { tellSessionEnd } from '../session/ends.ts'
import { lastIdp } from './last-idp.ts'

export function logoutRoute(s: BffServices) {
  const { baseUrl, postLogoutRedirect } = s.config

  async function logout(c: Context<BffEnv>, session: Session | null) {
    // The session's own IdP. Without a session (it expired, or ended elsewhere) the login at an
    // IdP may still be alive: the one `?idp=<name>` names (400 `unknown_idp` for another name),
    // else the one this browser last logged in with (last-idp.ts), else the only one.
    const idp = session
      ? s.idps.of(session)
      : (s.idps.named(c.req.queries('idp')) ??
        lastIdp(c, s) ??
        (s.idps.list.length === 1 ? s.idps.first : undefined))
    await s.sessions.destroy(c, session)
    c.header('Cache-Control', 'no-store')
    // An IdP without an end-session endpoint (django-oauth-toolkit) keeps its login alive, and the
    // SPA's silent login on the landing page would sign the user straight back in: silent logins
    // stop here until the user logs in for real (the callback clears this).
    appendSetCookie(
      c,
      serializeCookie(cookieNames(baseUrl).loggedOut, '1', {
        secure: isSecureOrigin(baseUrl),
        sameSite: 'Lax',
        maxAge: s.config.sessionLifetimeSeconds,
      })
    )
    if (session) {
      // Every instance closes this session's live connections (other tabs' event streams).
      await tellSessionEnd(s, { reason: 'logout', id: session.id })
      s.log('info', 'logout', { idp: session.idp, sub: await subjectHash(session.sub) })
      s.metrics.logout('user')
      await s.audit(c, 'logout', { session, route: '/bff/logout', reason: 'user' })
    }
    if (session?.refreshToken && idp) {
      // Best effort: the session is already gone here; a failed revocation is logged, not shown.
      await idp.oidc.revoke(session.refreshToken, 'refresh_token', traceOf(c)).catch((err) => {
        s.log('warn', 'logout.revocation_failed', { idp: session.idp, reason: errorReason(err) })
      })
    }
    // Also without a session here (it timed out, or ended elsewhere): the login at the IdP may
    // still be alive, and would log the browser straight back in. Without an ID token to hint
    // with, the IdP asks the user to confirm.
    const endSession = await idp?.oidc
      .endSessionUrl({
        idTokenHint: session?.idToken,
        postLogoutRedirectUri: baseUrl + postLogoutRedirect,
      })
      .catch((err) => {
        s.log('warn', 'logout.end_session_unavailable', {
          idp: idp.config.name,
          reason: errorReason(err),
        })
        return null
      })
    return c.redirect(endSession?.href ?? postLogoutRedirect, 302)
  }

  return new Hono<BffEnv>()
    .get('/bff/logout', async (c) => {
      const session = await s.sessions.load(c)
      if (session && !(await constantTimeEqual(c.req.query('sid') ?? '', session.sid))) {
        // A logout link without this session's sid is what a cross-site `<img>` would send.
        await s.audit(c, 'csrf_rejected', { session, route: '/bff/logout', reason: 'invalid_sid' })
        throw new BffError(400, 'invalid_sid', 'This logout link does not belong to your session.')
      }
      return logout(c, session)
    })
    .post('/bff/logout', csrfGuard(s.audit), async (c) => logout(c, await s.sessions.load(c)))
}
