/**
 * How the BFF authenticates to one IdP (token, refresh, revocation, PAR, exchange and
 * client-credentials calls alike, since openid-client applies the same `ClientAuth` to each):
 * the client secret, or a `private_key_jwt` client assertion (RFC 7523) that openid-client signs
 * per call with a fresh `jti`, a 60-second `exp` and the issuer as `aud`. The key is imported once
 * through jose into a non-extractable WebCrypto key, which Node and Workers both have.
 */
import * as jose from 'jose'
import * as client from 'openid-client'
import type { Config } from '../config/options.ts'
import { assertionAlg } from '../config/profile.ts'

/** The `ClientAuth` of `config`'s IdP; rejects when the signing key cannot be imported. */
export async function clientAuthOf(config: Config): Promise<client.ClientAuth> {
  if (config.clientAuth === 'client_secret_post')
    return client.ClientSecretPost(config.clientSecret!)
  if (config.clientAuth !== 'private_key_jwt') return client.ClientSecretBasic(config.clientSecret!)
  // Only the first key signs; the others are there so a rotation is one config change.
  const key = config.clientKey?.[0]
  if (!key) throw new ClientKeyError('no clientKey')
  const alg = assertionAlg(key, config.profile)
  try {
    const imported =
      typeof key === 'string'
        ? await jose.importPKCS8(key, alg, { extractable: false })
        : await jose.importJWK(key as jose.JWK, alg, { extractable: false })
    if (!(imported instanceof CryptoKey)) throw new Error('not an asymmetric key')
    const kid = typeof key === 'string' ? undefined : (key as { kid?: unknown }).kid
    return client.PrivateKeyJwt(
      { key: imported, ...(typeof kid === 'string' ? { kid } : {}) },
      // openid-client names an Ed25519 signature `Ed25519`; IdPs know it as `EdDSA` (RFC 8037).
      alg === 'EdDSA' ? { [client.modifyAssertion]: edDsaHeader } : undefined
    )
  } catch (err) {
    // jose's messages name what is wrong with the key, never the key itself.
    throw new ClientKeyError(`clientKey could not be imported as ${alg}: ${(err as Error).message}`)
  }
}

function edDsaHeader(header: Record<string, unknown>): void {
  if (header.alg === 'Ed25519') header.alg = 'EdDSA'
}

/** A `clientKey` that passed the config checks but that WebCrypto refuses. */
export class ClientKeyError extends Error {
  readonly code = 'client_key_unusable'
  constructor(message: string) {
    super(message)
    this.name = 'ClientKeyError'
  }
}
