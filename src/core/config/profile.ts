/**
 * `profile: "fapi2"`, the FAPI 2.0 Security Profile as a client follows it: its defaults (PAR,
 * DPoP, `private_key_jwt`) and its refusals at start-up of whatever breaks it (a setting turning
 * one of them off, a client secret, a client assertion algorithm the profile forbids). What the
 * IdP must offer is checked at discovery (oidc/fapi2.ts).
 */
import { clientKeyAlg, type ClientKey } from './client-key.ts'
import type { ClientAuthMethod, SecurityProfile } from './options.ts'

export const PROFILES: readonly SecurityProfile[] = ['fapi2']

/** FAPI 2.0 5.4.1: PS256, ES256, or EdDSA with Ed25519 (also named Ed25519, RFC 9864). */
export const FAPI2_SIGNING_ALGS: readonly string[] = ['PS256', 'ES256', 'EdDSA', 'Ed25519']

/**
 * The JWS algorithm `key`'s client assertions are signed with: the key's own (client-key.ts),
 * except under fapi2 for an RSA key that names none, which signs PS256, as RS256 is not allowed.
 */
export function assertionAlg(key: ClientKey, profile: SecurityProfile | undefined): string {
  const alg = clientKeyAlg(key)
  const named = typeof key !== 'string' && (key as { alg?: unknown }).alg !== undefined
  return profile === 'fapi2' && alg === 'RS256' && !named ? 'PS256' : alg
}

/** What the options say of the settings a profile governs, as given (unchecked). */
export interface ProfileInput {
  par?: unknown
  dpop?: unknown
  clientAuth?: unknown
  clientSecret?: unknown
}

/** A profile's defaults: what an unset `par`, `dpop` and `clientAuth` mean under it. */
export function profileDefaults(profile: SecurityProfile | undefined): {
  par: boolean
  dpop: boolean
  clientAuth: ClientAuthMethod
} {
  return profile === 'fapi2'
    ? { par: true, dpop: true, clientAuth: 'private_key_jwt' }
    : { par: false, dpop: false, clientAuth: 'client_secret_basic' }
}

/**
 * What breaks `profile` among the settings given, by key: one line each, naming the profile and
 * what it needs. The client key's algorithm is `keyProblem`'s.
 */
export function profileProblems(
  profile: SecurityProfile | undefined,
  input: ProfileInput
): Array<[key: keyof ProfileInput, why: string]> {
  if (profile !== 'fapi2') return []
  const problems: Array<[keyof ProfileInput, string]> = []
  if (input.par === false) {
    problems.push(['par', 'is false: profile fapi2 needs pushed authorization requests'])
  }
  if (input.dpop === false) {
    problems.push(['dpop', 'is false: profile fapi2 needs sender-constrained tokens (DPoP)'])
  }
  if (input.clientAuth !== undefined && input.clientAuth !== 'private_key_jwt') {
    problems.push(['clientAuth', 'profile fapi2 needs private_key_jwt'])
  }
  if (input.clientSecret !== undefined) {
    problems.push([
      'clientSecret',
      'is set: profile fapi2 takes no client secret (private_key_jwt with clientKey)',
    ])
  }
  return problems
}

/** Why the signing key (the first) breaks `profile`, or undefined when it does not. */
export function keyProblem(
  profile: SecurityProfile | undefined,
  keys: readonly ClientKey[] | undefined
): string | undefined {
  const key = keys?.[0]
  if (profile !== 'fapi2' || key === undefined) return undefined
  const alg = assertionAlg(key, profile)
  if (FAPI2_SIGNING_ALGS.includes(alg)) return undefined
  return `signs ${alg}: profile fapi2 allows PS256, ES256 or EdDSA (an RSA key without "alg" signs PS256)`
}
