/**
 * A back-channel logout token as the test IdP would sign it (OIDC Back-Channel Logout 1.0), for
 * tests that need one without logging out at the IdP's pages: by `sid`, or by `sub` alone.
 */
import { randomUUID } from 'node:crypto'
import { SignJWT, importJWK, type JWTPayload } from 'jose'
import type { Idp } from '../../src/demo/idp.ts'

const EVENT = 'http://schemas.openid.net/event/backchannel-logout'

export async function mintLogoutToken(
  idp: Idp,
  claims: { sub?: string; sid?: string },
  audience = 'bff'
): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  const payload: JWTPayload = {
    iss: idp.issuer,
    aud: audience,
    iat: now,
    exp: now + 120,
    jti: randomUUID(),
    events: { [EVENT]: {} },
    ...claims,
  }
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'RS256', kid: idp.signingKey.kid, typ: 'logout+jwt' })
    .sign(await importJWK(idp.signingKey, 'RS256'))
}

/** Posts `token` to a BFF's back-channel endpoint, as the IdP does. */
export function postLogoutToken(url: string, token: string): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ logout_token: token }).toString(),
  })
}
