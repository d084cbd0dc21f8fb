/**
 * `GET /bff/callback`: finishes the code flow. openid-client checks state, PKCE, nonce, `iss`, the
 * ID token's signature, `aud` and expiry; any failure is a 400 page and no session. The transaction
 * cookie is deleted whatever happens, so a callback URL works at most once per browser, and the
 * IdP's one-time codes stop a replay carrying a copied cookie.
 */
import { Hono } from 'hono'
import { getCookie } from 'hono/cookie'
import { BffError } from '../errors.ts'
import { subjectHash } from '../log.ts'
import { AuthorizationError } from '../oidc.ts'
import { isSecureOrigin } from '../security.ts'
import { serializeCookie } from '../session/cookie.ts'
import type { BffEnv } from '../session/manager.ts'
import type { Session } from '../session/types.ts'
import type { BffServices } from '../services.ts'
import { transactionCookieName, type LoginTransactionCookie } from './login.ts'

// Errors the IdP may answer to prompt=none; the SPA gets them back to decide whether to show a login.
const SILENT_LOGIN_ERRORS = new Set([
  'login_required',
  'consent_required',
  'interaction_required',
  'account_selection_required',
])

export function callbackRoute(s: BffServices) {
  const { baseUrl } = s.config
  const secure = isSecureOrigin(baseUrl)

  return new Hono<BffEnv>().get('/bff/callback', async (c) => {
    const state = c.req.query('state')
    if (!state) throw invalidCallback('missing state')
    const txName = transactionCookieName(baseUrl, state)
    const sealedTx = getCookie(c, txName)
    if (sealedTx) {
      c.header('Set-Cookie', serializeCookie(txName, '', { secure, sameSite: 'Lax', maxAge: 0 }), {
        append: true,
      })
    }
    const tx = sealedTx ? await s.sealer.unseal<LoginTransactionCookie>(sealedTx) : null
    if (!tx) throw invalidCallback('no login in progress for this state')

    const callbackUrl = new URL(`${baseUrl}/bff/callback${new URL(c.req.url).search}`)
    let tokens
    try {
      tokens = await s.oidc.callback(callbackUrl, tx)
    } catch (err) {
      if (!(err instanceof AuthorizationError)) throw err
      if (tx.prompt === 'none') {
        // Silent login failed: hand the reason back to the SPA instead of showing an error page.
        const error = SILENT_LOGIN_ERRORS.has(err.error) ? err.error : 'login_required'
        const target = new URL(tx.returnTo, baseUrl)
        target.searchParams.set('error', error)
        s.log('info', 'login.silent_failed', { reason: error })
        c.header('Cache-Control', 'no-store')
        return c.redirect(target.pathname + target.search + target.hash, 302)
      }
      s.log('warn', 'login.refused', { reason: err.error })
      throw new BffError(400, 'login_failed', 'The identity provider did not complete the login.', {
        cause: err,
      })
    }

    const claims = tokens.claims
    const nowSeconds = Math.floor(s.now() / 1000)
    // Never longer than the refresh token allows, when the IdP says how long that is.
    const absoluteExpiresAt = Math.min(
      nowSeconds + s.config.sessionLifetimeSeconds,
      tokens.refreshTokenExpiresAt ?? Infinity
    )
    const session: Session = {
      id: randomId(),
      sid: typeof claims.sid === 'string' && claims.sid ? claims.sid : randomId(),
      sub: String(claims.sub),
      claims,
      idToken: tokens.idToken,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      accessTokenExpiresAt: tokens.accessTokenExpiresAt,
      accessTokenLifetime: tokens.accessTokenLifetime,
      createdAt: nowSeconds,
      expiresAt: Math.min(absoluteExpiresAt, nowSeconds + s.config.idleTimeoutSeconds),
      absoluteExpiresAt,
      generation: 1,
    }
    // A login always starts a new session: an old one in this browser is ended, never reused.
    const previous = await s.sessions.load(c)
    if (previous) await s.sessions.store.delete(previous)
    await s.sessions.create(c, session)
    c.header('Cache-Control', 'no-store')
    s.log('info', 'login.success', {
      sub: await subjectHash(session.sub),
      store: s.sessions.store.kind,
    })
    return c.redirect(tx.returnTo, 302)
  })
}

function invalidCallback(reason: string) {
  return new BffError(400, 'invalid_callback', 'This login link is invalid or was already used.', {
    cause: new Error(reason),
  })
}

/** 256 random bits, base64url. */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32))
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '')
}
