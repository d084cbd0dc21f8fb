/**
 * With several IdPs, the browser keeps the name of the one it last logged in with (an `HttpOnly`
 * cookie, `SameSite=Lax`, as long as a session may last): a silent login and a logout without a
 * session go there when the SPA names no IdP. The first IdP could only answer a silent login of
 * another IdP's user with `login_required`, and could not end that user's login at logout. The
 * cookie holds a name from the config, nothing secret; a name no IdP has any more is ignored.
 */
import type { Context } from 'hono'
import type { Idp } from '../oidc/idps.ts'
import { appendSetCookie, requestCookies, serializeCookie } from '../session/cookie.ts'
import { cookieNames, isSecureOrigin } from '../session/cookie-names.ts'
import type { BffServices } from '../services.ts'

/** The configured IdP this browser last logged in with, when there are several. */
export function lastIdp(c: Context, s: BffServices): Idp | undefined {
  if (s.idps.list.length < 2) return undefined
  const name = requestCookies(c)[cookieNames(s.config.baseUrl).lastIdp]
  return name === undefined ? undefined : s.idps.byName(name)
}

/** Remembers `idp` as this browser's last, after a login with it (only with several IdPs). */
export function rememberIdp(c: Context, s: BffServices, idp: Idp): void {
  const { baseUrl, sessionLifetimeSeconds } = s.config
  const name = cookieNames(baseUrl).lastIdp
  if (s.idps.list.length < 2 || requestCookies(c)[name] === idp.config.name) return
  appendSetCookie(
    c,
    serializeCookie(name, idp.config.name, {
      secure: isSecureOrigin(baseUrl),
      sameSite: 'Lax',
      maxAge: sessionLifetimeSeconds,
    })
  )
}
