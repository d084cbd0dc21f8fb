/** Checks of an ID token beyond openid-client's, and the claims the SPA sees. */
import * as jose from 'jose'

/** Leeway for clocks that disagree a little with the IdP's. */
export const CLOCK_TOLERANCE_SECONDS = 30

// Claims that describe the token rather than the user: useful to the BFF, noise to the SPA.
const PROTOCOL_CLAIMS = new Set([
  'iss',
  'aud',
  'exp',
  'iat',
  'nbf',
  'nonce',
  'at_hash',
  'c_hash',
  's_hash',
  'azp',
  'jti',
  'auth_time',
  'acr',
  'amr',
  'sid',
  'sub_jwk',
  'cnf',
])

/**
 * What openid-client leaves unchecked in a token endpoint ID token: an `iat` in the future, and the
 * `at_hash` / `c_hash` (OIDC Core 3.1.3.8, 3.3.2.11) binding it to the access token and the code,
 * which are checked when present. Returns why the token is refused (a code for logs), or undefined.
 */
export async function idTokenProblem(
  idToken: string,
  claims: Record<string, unknown>,
  accessToken: string,
  code: string | null,
  nowSeconds: number
): Promise<string | undefined> {
  if (typeof claims.iat === 'number' && claims.iat > nowSeconds + CLOCK_TOLERANCE_SECONDS) {
    return 'id_token_iat_in_future'
  }
  const { alg = '' } = jose.decodeProtectedHeader(idToken)
  for (const [claim, value] of [
    ['at_hash', accessToken],
    ['c_hash', code],
  ] as const) {
    if (claims[claim] === undefined) continue
    if (value === null || claims[claim] !== (await leftHalfHash(value, alg))) {
      return `id_token_${claim}_mismatch`
    }
  }
  return undefined
}

/** The left half of `value`'s hash with the hash function of JWS `alg`, base64url; fails closed. */
async function leftHalfHash(value: string, alg: string): Promise<string | undefined> {
  const bits =
    /^[RPE]S(256|384|512)$/.exec(alg)?.[1] ?? (alg === 'EdDSA' || alg === 'Ed25519' ? '512' : '')
  if (!bits) return undefined
  const digest = new Uint8Array(
    await crypto.subtle.digest(`SHA-${bits}`, new TextEncoder().encode(value))
  )
  return jose.base64url.encode(digest.slice(0, digest.length / 2))
}

/** The user's claims for `/bff/user`: the ID token and userinfo claims minus protocol claims. */
export function userClaims(claims: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(claims).filter(([key]) => !PROTOCOL_CLAIMS.has(key)))
}
