/**
 * `GET /bff/callback` (the single IdP of the settings) or `/bff/callback/<name>` (each IdP of
 * `idps`): finishes the code flow. openid-client checks state, PKCE, nonce, `iss`, the
 * ID token's signature, `aud` and expiry; any failure is a 400 page and no session. The transaction
 * cookie is deleted whatever happens, and each transaction is used once on the server side (the
 * replay guard, shared wherever the deployment shares one), so a copied cookie replayed never
 * makes the BFF call the IdP's token endpoint again. A step-up login (`acr`, `maxAge`) must bring
 * what it asked for, else a 403 page `step_up_failed` and the browser's session stays as it was.
 */
import { Hono, type Context } from 'hono'
import { BffError } from '../errors.ts'
import { subjectHash } from '../observe/log.ts'
import { traceOf } from '../observe/spans.ts'
import { dpopKey, newDpopJwk } from '../oidc/dpop.ts'
import { AuthorizationError } from '../oidc/errors.ts'
import type { Idp } from '../oidc/idps.ts'
import { stepUpProblem } from '../policy/step-up-params.ts'
import { cookieNames, isSecureOrigin } from '../session/cookie-names.ts'
import {
  appendSetCookie,
  isCookieName,
  requestCookies,
  serializeCookie,
} from '../session/cookie.ts'
import type { BffEnv } from '../hono-env.ts'
import type { Session } from '../session/types.ts'
import type { BffServices } from '../services.ts'
import { rememberIdp } from './last-idp.ts'
import { tellSessionEnd } from '../session/ends.ts'
import {
  TRANSACTION_TTL_SECONDS,
  transactionCookieName,
  type LoginTransactionCookie,
} from './login.ts'

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

  const app = new Hono<BffEnv>()
  // Each IdP at its own address (RFC 9700 4.4.2): the address a response comes back to says
  // which IdP it claims to be from, and the transaction must have been started for that one.
  for (const idp of s.idps.list) {
    app.get(idp.config.callbackPath, (c) => audited(c, idp))
  }
  return app

  /** The callback, its failures written to the audit trail as `login_failed`. */
  async function audited(c: Context<BffEnv>, idp: Idp) {
    try {
      return await callback(c, idp)
    } catch (err) {
      // A refused step-up is written where its subject is known (checkStepUp).
      if (!(err instanceof BffError && err.code === 'step_up_failed')) {
        const route = idp.config.callbackPath
        await s.audit(c, 'login_failed', { idp: idp.config.name, route, reason: failure(err) })
      }
      throw err
    }
  }

  async function callback(c: Context<BffEnv>, idp: Idp) {
    const state = c.req.query('state')
    if (!state) throw invalidCallback('missing_state')
    const txName = transactionCookieName(baseUrl, state)
    const cookies = requestCookies(c)
    // A state the BFF made (base64url) always names a cookie; any other names none of its logins.
    const sealedTx = isCookieName(txName) ? cookies[txName] : undefined
    if (sealedTx) {
      appendSetCookie(c, serializeCookie(txName, '', { secure, sameSite: 'Lax', maxAge: 0 }))
    }
    const tx = sealedTx ? await s.sealer.unseal<LoginTransactionCookie>(sealedTx) : null
    if (!tx) throw invalidCallback('no_login_in_progress')
    // Mix-up: a transaction started for another IdP never has its code sent to this one's token
    // endpoint, nor this one's code to the other's; no session comes of it.
    if ((tx.idp ?? s.idps.first.config.name) !== idp.config.name) {
      s.log('warn', 'login.idp_mismatch', { idp: idp.config.name, started: tx.idp })
      throw invalidCallback('idp_mismatch')
    }
    // Claimed before the token endpoint is called: a replayed cookie (any number of times, from
    // anywhere, within its 10 minutes) must not spend the BFF's client credentials at the IdP.
    // Kept until the sealed transaction has expired anyway; never given back, as the code it
    // came with is spent or refused by then.
    let fresh: boolean
    try {
      fresh = await s.replay.claim(
        `login-tx:${await subjectHash(tx.state)}`,
        TRANSACTION_TTL_SECONDS + 60
      )
    } catch (err) {
      throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
        cause: err,
      })
    }
    if (!fresh) throw invalidCallback('login_transaction_used')

    const callbackUrl = new URL(`${idp.oidc.redirectUri}${new URL(c.req.url).search}`)
    let tokens
    // DPoP: the session's key pair, made at login (the code is bound to it); a transaction from
    // before keys were made there gets one now. The code grant binds the tokens to it.
    const dpopJwk = idp.config.dpop ? (tx.dpopKey ?? (await newDpopJwk())) : undefined
    try {
      tokens = await idp.oidc.callback(
        callbackUrl,
        tx,
        dpopJwk && (await dpopKey(dpopJwk)),
        traceOf(c)
      )
    } catch (err) {
      if (!(err instanceof AuthorizationError)) {
        s.metrics.login(idp.config.name, 'error')
        throw err
      }
      if (tx.prompt === 'none') {
        // Silent login failed: hand the reason back to the SPA instead of showing an error page.
        const error = SILENT_LOGIN_ERRORS.has(err.error) ? err.error : 'login_required'
        const target = new URL(tx.returnTo, baseUrl)
        target.searchParams.set('error', error)
        s.log('info', 'login.silent_failed', { idp: idp.config.name, reason: error })
        s.metrics.login(idp.config.name, 'silent_failed')
        await s.audit(c, 'login_failed', { idp: idp.config.name, reason: error })
        c.header('Cache-Control', 'no-store')
        return c.redirect(target.pathname + target.search + target.hash, 302)
      }
      s.log('warn', 'login.refused', { idp: idp.config.name, reason: err.error })
      s.metrics.login(idp.config.name, 'refused')
      throw new BffError(400, 'login_failed', 'The identity provider did not complete the login.', {
        cause: err,
      })
    }

    const claims = tokens.claims
    const nowMs = s.now()
    const nowSeconds = Math.floor(nowMs / 1000)
    if (tx.acr || tx.maxAge !== undefined) {
      await checkStepUp(s, c, claims, tx, nowSeconds, idp.config.name)
    }
    // Never longer than the refresh token allows, when the IdP says how long that is.
    const absoluteExpiresAt = Math.min(
      nowSeconds + s.config.sessionLifetimeSeconds,
      tokens.refreshTokenExpiresAt ?? Infinity
    )
    const session: Session = {
      id: randomId(),
      sid: typeof claims.sid === 'string' && claims.sid ? claims.sid : randomId(),
      sub: String(claims.sub),
      claims: withoutCheckedOnce(claims),
      idp: idp.config.name,
      // RFC 6749 5.1: a response without `scope` granted what was asked for.
      scope: tokens.scope ?? idp.config.scopes,
      idToken: tokens.idToken,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      ...(dpopJwk ? { dpopKey: dpopJwk } : {}),
      ...(tokens.tokenType ? { tokenType: tokens.tokenType } : {}),
      accessTokenExpiresAt: tokens.accessTokenExpiresAt,
      accessTokenLifetime: tokens.accessTokenLifetime,
      createdAt: nowSeconds,
      createdAtMs: nowMs,
      expiresAt: Math.min(absoluteExpiresAt, nowSeconds + s.config.idleTimeoutSeconds),
      absoluteExpiresAt,
      generation: 1,
    }
    // A login always starts a new session: an old one in this browser is ended, never reused.
    const previous = await s.sessions.load(c)
    if (previous) {
      await s.sessions.store.delete(previous)
      // Its live connections end; this browser's event streams come back on the new session.
      await tellSessionEnd(s, { reason: 'logout', id: previous.id, replaced: true })
    }
    await s.sessions.create(c, session)
    c.header('Cache-Control', 'no-store')
    const loggedOut = cookieNames(baseUrl).loggedOut
    if (cookies[loggedOut]) {
      // Logged in again: silent logins may keep this session going from now on.
      appendSetCookie(c, serializeCookie(loggedOut, '', { secure, sameSite: 'Lax', maxAge: 0 }))
    }
    rememberIdp(c, s, idp)
    s.metrics.login(idp.config.name, 'success')
    s.log('info', 'login.success', {
      idp: idp.config.name,
      sub: await subjectHash(session.sub),
      store: s.sessions.store.kind,
    })
    await s.audit(c, 'login', { session })
    if (tx.acr || tx.maxAge !== undefined) await s.audit(c, 'step_up', { session, acr: claims.acr })
    return c.redirect(tx.returnTo, 302)
  }
}

/**
 * A step-up login must bring what it asked for, or it changes nothing: 403 `step_up_failed`, and
 * the session this browser had goes on as it was (neither replaced nor ended). Its new tokens are
 * dropped, not revoked: the IdP may have put them in the same grant as the session's own, and
 * revoking one would end that grant, and with it the session that is to be kept.
 */
async function checkStepUp(
  s: BffServices,
  c: Context,
  claims: Record<string, unknown>,
  tx: LoginTransactionCookie,
  nowSeconds: number,
  idp: string
): Promise<void> {
  const problem = stepUpProblem(claims, tx, nowSeconds)
  const sub = await subjectHash(String(claims.sub))
  const acr = typeof claims.acr === 'string' ? claims.acr : undefined
  if (!problem) {
    s.log('info', 'login.step_up', { idp, sub, acr })
    return
  }
  s.log('warn', 'login.step_up_failed', { idp, sub, reason: problem, acr })
  s.metrics.login(idp, 'step_up_failed')
  await s.audit(c, 'login_failed', { sub: String(claims.sub), idp, reason: problem })
  throw new BffError(
    403,
    'step_up_failed',
    'The login did not reach the level of authentication this needs.',
    { cause: Object.assign(new Error(problem), { code: problem }) }
  )
}

const INVALID_CALLBACK = [
  'missing_state',
  'no_login_in_progress',
  'login_transaction_used',
  'idp_mismatch',
] as const

/**
 * Why a login failed, as the audit trail's code: the callback's own reason (`missing_state`), the
 * IdP's `error` when it is a standard one (AuthorizationError keeps no other), else the answer's
 * error code (`invalid_callback` for a response that failed validation, `idp_unavailable`).
 */
function failure(err: unknown): string {
  if (!(err instanceof BffError)) return 'internal_error'
  const cause = err.cause
  if (cause instanceof AuthorizationError) return cause.error
  const code = (cause as { code?: unknown } | undefined)?.code
  const own = INVALID_CALLBACK.find((reason) => reason === code)
  return own ?? err.code
}

/** `reason` is a code for the log (`Error:missing_state`), never shown to the client. */
function invalidCallback(reason: (typeof INVALID_CALLBACK)[number]) {
  return new BffError(400, 'invalid_callback', 'This login link is invalid or was already used.', {
    cause: Object.assign(new Error(reason), { code: reason }),
  })
}

/**
 * The ID token's claims without those that only served to check the login response once (the
 * nonce and the hashes binding the token to the code and access token): nothing reads them after
 * the callback, and the cookie-mode session carries them on every request.
 */
function withoutCheckedOnce(claims: Record<string, unknown>): Record<string, unknown> {
  const kept = { ...claims }
  for (const name of ['nonce', 'at_hash', 'c_hash', 's_hash']) delete kept[name]
  return kept
}

/** 256 random bits, base64url. */
export function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32))
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '')
}
