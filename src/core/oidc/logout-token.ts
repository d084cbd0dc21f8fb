/** OIDC Back-Channel Logout 1.0: what makes a logout token valid. */
import * as jose from 'jose'
import { BffError } from '../errors.ts'
import { CLOCK_TOLERANCE_SECONDS } from './id-token.ts'
import type { LogoutToken } from './types.ts'

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
/** A logout token older than this is refused; its jti is remembered at least this long. */
export const LOGOUT_TOKEN_MAX_AGE_SECONDS = 300

/**
 * Verifies the token's signature against the IdP's key set, `iss`, `aud`, `iat` freshness, the
 * logout event, `sid` and/or `sub`, no `nonce`, a `jti`. Throws `BffError` 400 `invalid_logout_token`.
 */
export async function verifyLogoutToken(
  token: string,
  {
    server,
    jwks,
    clientId,
    now,
  }: {
    server: { issuer: string; id_token_signing_alg_values_supported?: string[] }
    jwks: ReturnType<typeof jose.createRemoteJWKSet>
    clientId: string
    now: () => number
  }
): Promise<LogoutToken> {
  const algorithms = (server.id_token_signing_alg_values_supported ?? ['RS256']).filter(
    (alg) => alg !== 'none' && !alg.startsWith('HS')
  )
  let payload: jose.JWTPayload
  try {
    ;({ payload } = await jose.jwtVerify(token, jwks, {
      issuer: server.issuer,
      audience: clientId,
      algorithms,
      maxTokenAge: LOGOUT_TOKEN_MAX_AGE_SECONDS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      currentDate: new Date(now()),
      requiredClaims: ['iat', 'jti'],
    }))
  } catch (err) {
    throw invalidLogoutToken(err instanceof Error ? err.name : 'verification failed', err)
  }
  const events = payload.events as Record<string, unknown> | undefined
  const event = events?.[BACKCHANNEL_LOGOUT_EVENT]
  if (typeof event !== 'object' || event === null) {
    throw invalidLogoutToken('no back-channel logout event')
  }
  if ('nonce' in payload) throw invalidLogoutToken('a logout token must not carry a nonce')
  const sid = typeof payload.sid === 'string' && payload.sid ? payload.sid : undefined
  const sub = typeof payload.sub === 'string' && payload.sub ? payload.sub : undefined
  if (!sid && !sub) throw invalidLogoutToken('neither sid nor sub')
  if (payload.iat! > now() / 1000 + CLOCK_TOLERANCE_SECONDS) {
    throw invalidLogoutToken('iat in the future')
  }
  return { jti: String(payload.jti), sid, sub, iat: payload.iat! }
}

export function invalidLogoutToken(reason: string, cause?: unknown) {
  return new BffError(400, 'invalid_logout_token', 'The logout token is invalid.', {
    // The reason as a code, so the log names it (`Error:iat_in_the_future`), not just `Error`.
    cause: cause ?? Object.assign(new Error(reason), { code: reason.replace(/\W+/g, '_') }),
  })
}
