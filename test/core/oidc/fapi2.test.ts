/**
 * What profile fapi2 needs of the IdP's metadata (oidc/fapi2.ts), each gap named; and a token
 * the IdP did not bind refused under the profile.
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/core/config/env.ts'
import { BffError } from '../../../src/core/errors.ts'
import { checkSenderConstrained, fapi2Gaps } from '../../../src/core/oidc/fapi2.ts'

const key = (type: 'ec' | 'rsa' | 'ed25519') =>
  JSON.stringify(
    (type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519')
    ).privateKey.export({ format: 'jwk' })
  )
const configWith = (clientKey: string) =>
  parseConfig({
    BFF_ISSUER: 'https://idp.example.com',
    BFF_CLIENT_ID: 'bff',
    BFF_CLIENT_KEY: clientKey,
    BFF_PROFILE: 'fapi2',
    BFF_BASE_URL: 'https://app.example.com',
    BFF_SESSION_SECRET: 'a-session-secret-of-at-least-32-characters!',
  })
const EC = configWith(key('ec'))

/** What a FAPI 2.0 IdP publishes. */
const FAPI_IDP = {
  issuer: 'https://idp.example.com',
  pushed_authorization_request_endpoint: 'https://idp.example.com/par',
  authorization_response_iss_parameter_supported: true,
  code_challenge_methods_supported: ['S256'],
  dpop_signing_alg_values_supported: ['ES256', 'EdDSA'],
  token_endpoint_auth_methods_supported: ['private_key_jwt', 'tls_client_auth'],
  token_endpoint_auth_signing_alg_values_supported: ['PS256', 'ES256', 'EdDSA'],
}

describe('fapi2Gaps', () => {
  it('finds none in a FAPI 2.0 IdP, nor where a list is not published', () => {
    expect(fapi2Gaps(EC, FAPI_IDP)).toEqual([])
    const silent = {
      ...FAPI_IDP,
      dpop_signing_alg_values_supported: undefined,
      token_endpoint_auth_signing_alg_values_supported: undefined,
      code_challenge_methods_supported: undefined,
    }
    expect(fapi2Gaps(EC, silent)).toEqual([])
  })

  it('names each thing the IdP lacks', () => {
    const noPar = { ...FAPI_IDP, pushed_authorization_request_endpoint: undefined }
    expect(fapi2Gaps(EC, noPar)).toEqual(['no pushed_authorization_request_endpoint (PAR)'])
    expect(
      fapi2Gaps(EC, { ...FAPI_IDP, authorization_response_iss_parameter_supported: false })
    ).toEqual(['authorization_response_iss_parameter_supported is not true'])
    expect(fapi2Gaps(EC, { ...FAPI_IDP, code_challenge_methods_supported: ['plain'] })).toEqual([
      'code_challenge_methods_supported lacks S256',
    ])
    expect(fapi2Gaps(EC, { ...FAPI_IDP, dpop_signing_alg_values_supported: ['PS256'] })).toEqual([
      'dpop_signing_alg_values_supported lacks ES256',
    ])
    expect(
      fapi2Gaps(EC, { ...FAPI_IDP, token_endpoint_auth_methods_supported: ['client_secret_basic'] })
    ).toEqual(['token_endpoint_auth_methods_supported lacks private_key_jwt'])
    expect(
      fapi2Gaps(EC, { ...FAPI_IDP, token_endpoint_auth_signing_alg_values_supported: ['PS256'] })
    ).toEqual(["token_endpoint_auth_signing_alg_values_supported lacks ES256 (the clientKey's)"])
  })

  it("checks the assertion's own algorithm: PS256 for an RSA key, EdDSA (or Ed25519) for Ed25519", () => {
    const rsa = configWith(key('rsa'))
    const ed = configWith(key('ed25519'))
    const only = (algs: string[]) => ({
      ...FAPI_IDP,
      token_endpoint_auth_signing_alg_values_supported: algs,
    })
    expect(fapi2Gaps(rsa, only(['PS256']))).toEqual([])
    expect(fapi2Gaps(rsa, only(['RS256', 'ES256']))).toEqual([
      "token_endpoint_auth_signing_alg_values_supported lacks PS256 (the clientKey's)",
    ])
    expect(fapi2Gaps(ed, only(['Ed25519']))).toEqual([])
    expect(fapi2Gaps(ed, only(['EdDSA']))).toEqual([])
  })
})

describe('checkSenderConstrained', () => {
  it('refuses a bearer token under fapi2, and lets it be without the profile', () => {
    expect(() => checkSenderConstrained(EC, { token_type: 'dpop' })).not.toThrow()
    let refused: unknown
    try {
      checkSenderConstrained(EC, { token_type: 'bearer' })
    } catch (err) {
      refused = err
    }
    expect(refused).toBeInstanceOf(BffError)
    expect(refused).toMatchObject({ status: 502, code: 'idp_error' })
    expect(() =>
      checkSenderConstrained({ ...EC, profile: undefined }, { token_type: 'bearer' })
    ).not.toThrow()
  })
})
