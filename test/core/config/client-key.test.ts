/**
 * `clientAuth: 'private_key_jwt'` with `clientKey`, and `par`: what the config accepts, and every
 * refusal naming the option (or setting, or file path) without ever quoting the key.
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ConfigError, parseConfig, type Env } from '../../../src/core/config/env.ts'
import { resolveOptions } from '../../../src/core/config/resolve.ts'
import type { BffOptions } from '../../../src/core/config/options.ts'

const SECRET = 'a-session-secret-of-at-least-32-characters!'
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ed = generateKeyPairSync('ed25519')
const RSA_JWK = rsa.privateKey.export({ format: 'jwk' }) as JsonWebKey
const EC_JWK = { ...(ec.privateKey.export({ format: 'jwk' }) as JsonWebKey), kid: 'k1' }
const RSA_PEM = rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
const EC_PEM = ec.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
const ED_PEM = ed.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string
const PUBLIC_PEM = rsa.publicKey.export({ format: 'pem', type: 'spki' }) as string
const PKCS1_PEM = rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }) as string
const EC_PUBLIC_JWK = { ...EC_JWK, d: undefined }

const options = (idp: Record<string, unknown>): BffOptions =>
  ({
    issuer: 'https://idp.example.com',
    clientId: 'bff',
    baseUrl: 'https://app.example.com',
    sessionSecret: SECRET,
    clientAuth: 'private_key_jwt',
    ...idp,
  }) as BffOptions

function problemsOf(run: () => unknown): readonly string[] {
  try {
    run()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('the config was accepted')
}

/** No problem line may hold any part of a key's private material. */
function expectNoKeyIn(problems: readonly string[]) {
  const text = problems.join('\n')
  for (const secret of [
    RSA_JWK.d!,
    EC_JWK.d!,
    RSA_PEM.split('\n')[1]!,
    PKCS1_PEM.split('\n')[1]!,
  ]) {
    expect(text).not.toContain(secret.slice(0, 24))
  }
}

describe('private_key_jwt keys', () => {
  it.each([
    ['an RSA JWK object', RSA_JWK],
    ['an EC JWK as JSON text', JSON.stringify(EC_JWK)],
    ['a JWK set', JSON.stringify({ keys: [EC_JWK, RSA_JWK] })],
    ['an RSA PKCS#8 PEM', RSA_PEM],
    ['an EC PKCS#8 PEM with escaped line breaks', EC_PEM.replace(/\n/g, '\\n')],
    ['an Ed25519 PKCS#8 PEM', ED_PEM],
    ['a rotation list', [EC_JWK, RSA_PEM]],
  ])('accepts %s, with no client secret', (_, clientKey) => {
    const config = resolveOptions(options({ clientKey }))
    expect(config.clientAuth).toBe('private_key_jwt')
    expect(config.clientSecret).toBeUndefined()
    expect(config.clientKey!.length).toBeGreaterThan(0)
    // Resolving a resolved Config again (createBff does) keeps it.
    expect(resolveOptions(config).clientKey).toEqual(config.clientKey)
  })

  it.each([
    ['garbage text', 'not a key', 'is neither a JWK (JSON) nor PEM text'],
    ['broken JSON', '{"kty": "RSA",', 'is not valid JSON'],
    ['a public JWK', EC_PUBLIC_JWK, 'is a public key only'],
    ['a public PEM', PUBLIC_PEM, 'is a public key only'],
    ['a PKCS#1 PEM', PKCS1_PEM, 'convert it to PKCS#8'],
    ['a symmetric JWK', { kty: 'oct', k: 'c2VjcmV0' }, 'is a symmetric key'],
    ['an encryption alg', { ...RSA_JWK, alg: 'RSA-OAEP' }, 'has "alg": "RSA-OAEP"'],
    ['an EC key with RS256', { ...EC_JWK, alg: 'RS256' }, 'has "alg": "RS256"'],
    ['an unsupported curve', { ...EC_JWK, crv: 'secp256k1' }, 'has curve "secp256k1"'],
    ['a corrupt PEM body', RSA_PEM.replace(/\n[A-Za-z0-9+/]{10}/, '\n!!!!'), 'is PEM whose body'],
    ['an empty list', [], 'must hold at least one private key'],
  ])('refuses %s, naming clientKey and never the key', (_, clientKey, why) => {
    const problems = problemsOf(() => resolveOptions(options({ clientKey })))
    expect(problems).toEqual([expect.stringMatching(/^"clientKey" /)])
    expect(problems[0]).toContain(why)
    expectNoKeyIn(problems)
  })

  it('names the entry of a list that is bad', () => {
    const problems = problemsOf(() => resolveOptions(options({ clientKey: [EC_JWK, PUBLIC_PEM] })))
    expect(problems).toEqual([
      '"clientKey" entry 2 is a public key only: the private key is needed',
    ])
  })

  it('requires clientKey with private_key_jwt, and refuses a secret next to it', () => {
    expect(problemsOf(() => resolveOptions(options({})))).toEqual([
      expect.stringMatching(/^"clientKey" is required with "clientAuth": "private_key_jwt"/),
    ])
    expect(
      problemsOf(() => resolveOptions(options({ clientKey: EC_JWK, clientSecret: 'left-over' })))
    ).toEqual([
      '"clientSecret" and "clientAuth": "private_key_jwt" are both set: keep clientKey only',
    ])
  })

  it('refuses clientKey without private_key_jwt', () => {
    const problems = problemsOf(() =>
      resolveOptions(
        options({ clientAuth: 'client_secret_basic', clientSecret: 's', clientKey: EC_JWK })
      )
    )
    expect(problems).toEqual([
      '"clientKey" is only used with "clientAuth": "private_key_jwt", not client_secret_basic',
    ])
  })

  it('names idps.<name>.clientKey in an IdP entry', () => {
    const problems = problemsOf(() =>
      resolveOptions({
        baseUrl: 'https://app.example.com',
        sessionSecret: SECRET,
        idps: {
          corp: {
            issuer: 'https://idp.example.com',
            clientId: 'bff',
            clientAuth: 'private_key_jwt',
            clientKey: PUBLIC_PEM,
          },
        },
      })
    )
    expect(problems).toEqual([
      '"idps.corp.clientKey" is a public key only: the private key is needed',
    ])
  })
})

describe('BFF_CLIENT_KEY, BFF_PAR and the config file', () => {
  const env: Env = {
    BFF_ISSUER: 'https://idp.example.com',
    BFF_CLIENT_ID: 'bff',
    BFF_BASE_URL: 'https://app.example.com',
    BFF_SESSION_SECRET: SECRET,
    BFF_CLIENT_AUTH: 'private_key_jwt',
  }

  it('reads the key and the PAR switch from the environment', () => {
    const config = parseConfig({ ...env, BFF_CLIENT_KEY: RSA_PEM, BFF_PAR: 'true' })
    expect(config.clientKey).toEqual([RSA_PEM.trim()])
    expect(config.par).toBe(true)
    expect(config.idps[0]!.par).toBe(true)
    expect(parseConfig({ ...env, BFF_CLIENT_KEY: RSA_PEM }).par).toBe(false)
  })

  it('names the setting of a bad key or switch, never the key', () => {
    const problems = problemsOf(() =>
      parseConfig({ ...env, BFF_CLIENT_KEY: PKCS1_PEM, BFF_PAR: 'yes' })
    )
    expect(problems).toEqual([
      expect.stringMatching(/^BFF_CLIENT_KEY is RSA PRIVATE KEY/),
      'BFF_PAR must be true or false',
    ])
    expectNoKeyIn(problems)
    expect(
      problemsOf(() => parseConfig({ ...env, BFF_CLIENT_SECRET: 'x', BFF_CLIENT_KEY: RSA_PEM }))
    ).toEqual([
      'BFF_CLIENT_SECRET and "clientAuth": "private_key_jwt" are both set: keep clientKey only',
    ])
  })

  it('takes clientKey and par per IdP in the file, the key from ${NAME}', () => {
    const file = {
      idps: {
        corp: {
          issuer: 'https://idp.example.com',
          clientId: 'bff',
          clientAuth: 'private_key_jwt',
          clientKey: '${CORP_KEY}',
          par: true,
        },
        partner: { issuer: 'https://partner.example', clientId: 'p', clientSecret: 's' },
      },
    }
    const base = { BFF_BASE_URL: env.BFF_BASE_URL, BFF_SESSION_SECRET: SECRET }
    const config = parseConfig({ ...base, CORP_KEY: JSON.stringify(EC_JWK) }, { configFile: file })
    expect(config.idps.map((idp) => [idp.name, idp.clientAuth, idp.par])).toEqual([
      ['corp', 'private_key_jwt', true],
      ['partner', 'client_secret_basic', false],
    ])
    expect(config.idps[0]!.clientKey).toEqual([EC_JWK])
    const problems = problemsOf(() =>
      parseConfig({ ...base, CORP_KEY: JSON.stringify(EC_PUBLIC_JWK) }, { configFile: file })
    )
    expect(problems).toEqual([
      'BFF_CONFIG idps.corp.clientKey: is a public key only: the private key (with "d") is needed',
    ])
    // The file's IdPs replace BFF_CLIENT_KEY as they do the other IdP settings.
    expect(
      problemsOf(() =>
        parseConfig(
          { ...base, CORP_KEY: JSON.stringify(EC_JWK), BFF_CLIENT_KEY: RSA_PEM },
          { configFile: file }
        )
      )
    ).toEqual([expect.stringContaining('BFF_CLIENT_KEY are both set')])
  })

  it('refuses a non-boolean par in the file', () => {
    const file = {
      idps: {
        corp: { issuer: 'https://idp.example.com', clientId: 'bff', clientSecret: 's', par: 'yes' },
      },
    }
    const problems = problemsOf(() =>
      parseConfig(
        { BFF_BASE_URL: env.BFF_BASE_URL, BFF_SESSION_SECRET: SECRET },
        { configFile: file }
      )
    )
    expect(problems).toEqual(['BFF_CONFIG idps.corp.par: must be true or false'])
  })
})
