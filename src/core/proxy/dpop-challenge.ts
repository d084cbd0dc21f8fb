/**
 * An upstream's DPoP nonce challenge (RFC 9449 9): `WWW-Authenticate: DPoP error="use_dpop_nonce"`
 * with the nonce in `DPoP-Nonce`; the caller may send the request once more with it.
 */

// The DPoP scheme, then its auth-params (name=value or name="value") up to `error`: another
// scheme's `error` (say Bearer's) after it does not count.
const DPOP_SCHEME = /(?:^|,)\s*DPoP(?=[\s,]|$)/i
const NONCE_ERROR =
  /^\s*(?:,?\s*[\w-]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^,\s]*)\s*)*?,?\s*error\s*=\s*"?use_dpop_nonce"?(?=[\s,]|$)/i

/** The nonce to send again with, when the answer's headers are a `use_dpop_nonce` challenge. */
export function upstreamNonceChallenge(
  wwwAuthenticate: string | null | undefined,
  dpopNonce: string | null | undefined
): string | undefined {
  if (!dpopNonce || !wwwAuthenticate) return undefined
  const scheme = DPOP_SCHEME.exec(wwwAuthenticate)
  if (!scheme) return undefined
  const params = wwwAuthenticate.slice(scheme.index + scheme[0].length)
  return NONCE_ERROR.test(params) ? dpopNonce : undefined
}

/** The last nonce each upstream origin gave (`upstreamNonces`). */
export interface UpstreamNonces {
  get(url: URL): string | undefined
  set(url: URL, nonce: string): void
}

/**
 * The last nonce each upstream origin gave (RFC 9449 9), sent in the next proofs to it. The
 * origins are the routes' upstreams, so the map stays as small as the config.
 */
export function upstreamNonces(): UpstreamNonces {
  const byOrigin = new Map<string, string>()
  return {
    get: (url) => byOrigin.get(url.origin),
    set: (url, nonce) => void byOrigin.set(url.origin, nonce),
  }
}
