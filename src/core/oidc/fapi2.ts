/**
 * What `profile: "fapi2"` needs of the IdP (FAPI 2.0 Security Profile), checked when its discovery
 * document is read: an IdP that cannot serve the profile is reported unavailable, with what it
 * lacks, rather than used with less (its logins and grants answer 503 `idp_unavailable`). And a
 * token the IdP did not bind to the BFF's key is refused rather than sent on as a bearer token.
 * The settings' side (PAR, DPoP, private_key_jwt on; what breaks them refused) is config/profile.ts.
 */
import type * as client from 'openid-client'
import { assertionAlg } from '../config/profile.ts'
import type { Config } from '../config/options.ts'
import { BffError } from '../errors.ts'

/**
 * What the IdP's metadata lacks for profile fapi2, one phrase each; empty when nothing. A list
 * the IdP does not publish is not held against it (it may still accept), except for PAR and the
 * `iss` parameter, which the profile needs the IdP to say it serves.
 */
export function fapi2Gaps(config: Config, metadata: client.ServerMetadata): string[] {
  const gaps: string[] = []
  const lacks = (list: unknown, ...wanted: string[]) =>
    Array.isArray(list) && !wanted.some((value) => list.includes(value))
  if (!metadata.pushed_authorization_request_endpoint) {
    gaps.push('no pushed_authorization_request_endpoint (PAR)')
  }
  // RFC 9207: with it advertised, openid-client refuses a response without `iss` (mix-up defence).
  if (metadata.authorization_response_iss_parameter_supported !== true) {
    gaps.push('authorization_response_iss_parameter_supported is not true')
  }
  if (lacks(metadata.code_challenge_methods_supported, 'S256')) {
    gaps.push('code_challenge_methods_supported lacks S256')
  }
  // The session keys are ES256 (oidc/dpop.ts).
  if (lacks(metadata.dpop_signing_alg_values_supported, 'ES256')) {
    gaps.push('dpop_signing_alg_values_supported lacks ES256')
  }
  if (lacks(metadata.token_endpoint_auth_methods_supported, 'private_key_jwt')) {
    gaps.push('token_endpoint_auth_methods_supported lacks private_key_jwt')
  }
  const key = config.clientKey?.[0]
  if (key !== undefined) {
    const alg = assertionAlg(key, config.profile)
    // Ed25519 signatures go out named EdDSA (client-auth.ts); an IdP may list either name.
    const names = alg === 'EdDSA' || alg === 'Ed25519' ? ['EdDSA', 'Ed25519'] : [alg]
    if (lacks(metadata.token_endpoint_auth_signing_alg_values_supported, ...names)) {
      gaps.push(`token_endpoint_auth_signing_alg_values_supported lacks ${alg} (the clientKey's)`)
    }
  }
  return gaps
}

/** An IdP whose discovery shows it cannot serve the IdP's profile. */
export class ProfileUnsupportedError extends Error {
  readonly code = 'fapi2_unsupported'
  constructor(gaps: readonly string[]) {
    super(`the IdP cannot serve profile fapi2: ${gaps.join('; ')}`)
    this.name = 'ProfileUnsupportedError'
  }
}

/** Throws `ProfileUnsupportedError` when `config`'s profile is fapi2 and the IdP falls short. */
export function checkProfileSupport(config: Config, metadata: client.ServerMetadata): void {
  if (config.profile !== 'fapi2') return
  const gaps = fapi2Gaps(config, metadata)
  if (gaps.length) throw new ProfileUnsupportedError(gaps)
}

/**
 * Under fapi2 every access token must be sender-constrained: one the IdP answered as a bearer
 * token despite the proof is refused (502 `idp_error`), never sent on to an upstream.
 */
export function checkSenderConstrained(
  config: Config,
  tokens: Pick<client.TokenEndpointResponse, 'token_type'>
): void {
  if (config.profile !== 'fapi2' || tokens.token_type?.toLowerCase() === 'dpop') return
  throw new BffError(502, 'idp_error', 'The identity provider sent an invalid response.', {
    cause: Object.assign(
      new Error(`profile fapi2: the IdP answered a ${tokens.token_type} token, not a DPoP one`),
      { code: 'token_not_sender_constrained' }
    ),
  })
}
