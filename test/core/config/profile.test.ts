/**
 * `profile: "fapi2"` per IdP: PAR, DPoP and private_key_jwt turned on; every setting that breaks
 * the profile refused at start-up with one line naming it (settings, config file, createBff).
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { parseConfig, type Env } from '../../../src/core/config/env.ts'
import { problemsOf } from '../../helpers/config-problems.ts'
import { resolveOptions } from '../../../src/core/config/resolve.ts'

const SECRET = 'a-session-secret-of-at-least-32-characters!'
const jwk = (key: ReturnType<typeof generateKeyPairSync>['privateKey']) =>
  key.export({ format: 'jwk' }) as JsonWebKey
const EC_KEY = jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey)
const P384_KEY = jwk(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey)
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const RSA_KEY = jwk(rsa)
const RSA_PEM = rsa.export({ format: 'pem', type: 'pkcs8' }) as string
const ED_KEY = jwk(generateKeyPairSync('ed25519').privateKey)

const env: Env = {
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'bff',
  BFF_CLIENT_KEY: JSON.stringify(EC_KEY),
  BFF_PROFILE: 'fapi2',
  BFF_BASE_URL: 'https://app.example.com',
  BFF_SESSION_SECRET: SECRET,
}

describe('profile fapi2', () => {
  it('turns on PAR, DPoP and private_key_jwt (BFF_PROFILE)', () => {
    const config = parseConfig(env)
    expect(config).toMatchObject({
      profile: 'fapi2',
      par: true,
      dpop: true,
      clientAuth: 'private_key_jwt',
    })
    expect(config.clientSecret).toBeUndefined()
    expect(config.idps[0]).toMatchObject({ profile: 'fapi2', par: true, dpop: true })
    // No profile: none of it.
    const plain = { ...env, BFF_PROFILE: undefined, BFF_CLIENT_KEY: undefined }
    const without = parseConfig({ ...plain, BFF_CLIENT_SECRET: 's' })
    expect(without).toMatchObject({ par: false, dpop: false, clientAuth: 'client_secret_basic' })
    expect(without.profile).toBeUndefined()
  })

  it('refuses each setting that breaks it, one line naming it', () => {
    const cases: Array<[Env, string]> = [
      [{ BFF_PAR: 'false' }, 'BFF_PAR is false: profile fapi2 needs pushed authorization requests'],
      [
        { BFF_DPOP: 'false' },
        'BFF_DPOP is false: profile fapi2 needs sender-constrained tokens (DPoP)',
      ],
      [
        { BFF_CLIENT_AUTH: 'client_secret_basic' },
        'BFF_CLIENT_AUTH profile fapi2 needs private_key_jwt',
      ],
      [
        { BFF_CLIENT_AUTH: 'client_secret_post' },
        'BFF_CLIENT_AUTH profile fapi2 needs private_key_jwt',
      ],
      [
        { BFF_CLIENT_SECRET: 'secret' },
        'BFF_CLIENT_SECRET is set: profile fapi2 takes no client secret (private_key_jwt with clientKey)',
      ],
      [
        { BFF_CLIENT_KEY: JSON.stringify({ ...RSA_KEY, alg: 'RS256' }) },
        'BFF_CLIENT_KEY signs RS256: profile fapi2 allows PS256, ES256 or EdDSA (an RSA key without "alg" signs PS256)',
      ],
      [
        { BFF_CLIENT_KEY: JSON.stringify(P384_KEY) },
        'BFF_CLIENT_KEY signs ES384: profile fapi2 allows PS256, ES256 or EdDSA (an RSA key without "alg" signs PS256)',
      ],
      [{ BFF_PROFILE: 'fapi1' }, 'BFF_PROFILE must be one of fapi2, got "fapi1"'],
    ]
    for (const [change, line] of cases) {
      expect(problemsOf(() => parseConfig({ ...env, ...change }))).toEqual([line])
    }
    // No key at all: private_key_jwt needs one.
    expect(problemsOf(() => parseConfig({ ...env, BFF_CLIENT_KEY: undefined }))).toEqual([
      expect.stringMatching(/^BFF_CLIENT_KEY is required/),
    ])
  })

  it('signs PS256 with an RSA key that names no algorithm, and takes EC P-256 and Ed25519', () => {
    for (const key of [RSA_KEY, RSA_PEM, EC_KEY, ED_KEY]) {
      const text = typeof key === 'string' ? key : JSON.stringify(key)
      expect(parseConfig({ ...env, BFF_CLIENT_KEY: text }).profile).toBe('fapi2')
    }
    expect(parseConfig({ ...env, BFF_CLIENT_KEY: JSON.stringify({ ...RSA_KEY, alg: 'PS256' }) }))
  })

  it('is per IdP in the config file, named by its JSON path', () => {
    const base = { BFF_BASE_URL: env.BFF_BASE_URL, BFF_SESSION_SECRET: SECRET }
    const corp = { issuer: 'https://idp.example.com', clientId: 'a', profile: 'fapi2' }
    const file = (entry: object) => ({
      idps: {
        corp: { ...corp, clientKey: EC_KEY, ...entry },
        partner: { issuer: 'https://partner.example', clientId: 'p', clientSecret: 's' },
      },
    })
    const config = parseConfig(base, { configFile: file({}) })
    expect(config.idps.map((idp) => [idp.name, idp.profile, idp.par, idp.dpop])).toEqual([
      ['corp', 'fapi2', true, true],
      ['partner', undefined, false, false],
    ])
    expect(
      problemsOf(() =>
        parseConfig(base, { configFile: file({ clientAuth: 'client_secret_basic' }) })
      )
    ).toEqual(['BFF_CONFIG idps.corp.clientAuth: profile fapi2 needs private_key_jwt'])
    expect(problemsOf(() => parseConfig(base, { configFile: file({ dpop: false }) }))).toEqual([
      'BFF_CONFIG idps.corp.dpop: is false: profile fapi2 needs sender-constrained tokens (DPoP)',
    ])
    expect(problemsOf(() => parseConfig(base, { configFile: file({ par: false }) }))).toEqual([
      'BFF_CONFIG idps.corp.par: is false: profile fapi2 needs pushed authorization requests',
    ])
    // BFF_CLIENT_AUTH is the default of entries without their own: then it is the one named.
    expect(
      problemsOf(() =>
        parseConfig({ ...base, BFF_CLIENT_AUTH: 'client_secret_post' }, { configFile: file({}) })
      )
    ).toEqual(['BFF_CLIENT_AUTH profile fapi2 needs private_key_jwt'])
    // The setting and the file together: one place for it.
    expect(
      problemsOf(() => parseConfig({ ...base, BFF_PROFILE: 'fapi2' }, { configFile: file({}) }))
    ).toEqual([expect.stringContaining('BFF_PROFILE are both set')])
  })

  it('is an option of createBff, with the option named', () => {
    const options = {
      issuer: 'https://idp.example.com',
      clientId: 'bff',
      clientKey: EC_KEY,
      profile: 'fapi2' as const,
      baseUrl: 'https://app.example.com',
      sessionSecret: SECRET,
    }
    expect(resolveOptions(options)).toMatchObject({ profile: 'fapi2', par: true, dpop: true })
    expect(problemsOf(() => resolveOptions({ ...options, dpop: false }))).toEqual([
      '"dpop" is false: profile fapi2 needs sender-constrained tokens (DPoP)',
    ])
    // A resolved Config resolves again to the same.
    const config = resolveOptions(options)
    expect(resolveOptions(config)).toEqual(config)
  })
})
