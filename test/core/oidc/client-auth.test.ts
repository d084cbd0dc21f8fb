/**
 * The client assertions `private_key_jwt` sends (RFC 7523), signed through WebCrypto with each key
 * type the config accepts and verified here with the public key as an IdP would: the header's
 * `alg` and `kid`, `iss`/`sub` the client id, `aud` the issuer, a unique `jti`, a short `exp`.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import * as jose from 'jose'
import { describe, expect, it } from 'vitest'
import { resolveOptions } from '../../../src/core/config/resolve.ts'
import { clientAuthOf } from '../../../src/core/oidc/client-auth.ts'
import type { BffOptions } from '../../../src/core/config/options.ts'

const ISSUER = 'https://idp.example.com'

function configWith(clientKey: unknown) {
  return resolveOptions({
    issuer: ISSUER,
    clientId: 'bff',
    clientAuth: 'private_key_jwt',
    clientKey,
    baseUrl: 'https://app.example.com',
    sessionSecret: 'a-session-secret-of-at-least-32-characters!',
  } as BffOptions)
}

async function assertionOf(clientKey: unknown): Promise<string> {
  const auth = await clientAuthOf(configWith(clientKey))
  const body = new URLSearchParams()
  await auth({ issuer: ISSUER }, { client_id: 'bff' }, body, new Headers())
  expect(body.get('client_assertion_type')).toBe(
    'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
  )
  return body.get('client_assertion')!
}

type Pair = { privateKey: KeyObject; publicKey: KeyObject }
const rsa = (): Pair => generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = (namedCurve: string): Pair => generateKeyPairSync('ec', { namedCurve })
const ed = (): Pair => generateKeyPairSync('ed25519')
const jwk = (key: KeyObject) => key.export({ format: 'jwk' }) as JsonWebKey
const pem = (key: KeyObject) => key.export({ format: 'pem', type: 'pkcs8' }) as string

describe('private_key_jwt client assertions', () => {
  const cases: Array<[string, Pair, (keys: Pair) => unknown, string]> = [
    ['RSA PKCS#8 PEM', rsa(), (keys) => pem(keys.privateKey), 'RS256'],
    [
      'RSA JWK with alg PS256',
      rsa(),
      (keys) => ({ ...jwk(keys.privateKey), alg: 'PS256' }),
      'PS256',
    ],
    ['EC P-256 JWK', ec('P-256'), (keys) => jwk(keys.privateKey), 'ES256'],
    ['EC P-384 PEM', ec('P-384'), (keys) => pem(keys.privateKey), 'ES384'],
    ['Ed25519 PEM', ed(), (keys) => pem(keys.privateKey), 'EdDSA'],
  ]
  it.each(cases)('%s signs a verifiable assertion', async (_, keys, keyOf, alg) => {
    const assertion = await assertionOf(keyOf(keys))
    const { payload, protectedHeader } = await jose.jwtVerify(assertion, keys.publicKey, {
      issuer: 'bff',
      subject: 'bff',
      audience: ISSUER,
      algorithms: [alg],
    })
    expect(protectedHeader.alg).toBe(alg)
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60)
  })

  it('signs with the first key of a list, naming its kid, a new jti each time', async () => {
    const first = ec('P-256')
    const second = rsa()
    const keys = [{ ...jwk(first.privateKey), kid: 'new' }, pem(second.privateKey)]
    const a = await assertionOf(keys)
    const b = await assertionOf(keys)
    const verified = await jose.jwtVerify(a, first.publicKey)
    expect(verified.protectedHeader.kid).toBe('new')
    await expect(jose.jwtVerify(a, second.publicKey)).rejects.toThrow()
    expect(jose.decodeJwt(a).jti).not.toBe(jose.decodeJwt(b).jti)
  })

  it('refuses a key WebCrypto cannot import without quoting it', async () => {
    const { privateKey } = ec('P-256')
    // Well-formed, but not a point of the curve: only the import can tell.
    const broken = { ...jwk(privateKey), x: 'AAAA' }
    const error = await clientAuthOf(configWith(broken)).catch((err: unknown) => err)
    expect(error).toMatchObject({ code: 'client_key_unusable' })
    expect((error as Error).message).not.toContain(jwk(privateKey).d!.slice(0, 12))
  })
})
