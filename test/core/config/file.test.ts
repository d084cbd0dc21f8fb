import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ConfigError, parseConfig, type Env } from '../../../src/core/config/env.ts'
import { configJsonSchemaText } from '../../../scripts/config-json-schema.ts'

const SECRET = 'a-session-secret-of-at-least-32-characters!'
const base: Env = { BFF_BASE_URL: 'https://app.example.com', BFF_SESSION_SECRET: SECRET }

const goodFile = {
  $schema: './schema/bff-config.schema.json',
  idps: {
    corp: {
      issuer: 'https://login.corp.example',
      clientId: 'bff',
      clientSecret: '${CORP_SECRET}',
      scopes: ['openid', 'profile', 'offline_access'],
      label: 'Corporate login',
    },
  },
  routes: [
    { prefix: '/api', upstream: 'https://orders.internal/v1' },
    { prefix: '/api/admin/', upstream: 'http://127.0.0.1:4100/' },
  ],
}

const parse = (configFile: unknown, env: Env = { ...base, CORP_SECRET: 's3cret' }) =>
  parseConfig(env, { configFile })

function problemsOf(configFile: unknown, env: Env = { ...base, CORP_SECRET: 's3cret' }) {
  try {
    parse(configFile, env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('parseConfig accepted an invalid config file')
}

/** The good file with `change` applied to a deep copy. */
function goodWith(change: (file: typeof goodFile & Record<string, unknown>) => void) {
  const file = structuredClone(goodFile) as typeof goodFile & Record<string, unknown>
  change(file)
  return file
}

describe('BFF_CONFIG: a good file', () => {
  it('feeds the same Config as the settings, as JSON text and as an object', () => {
    for (const source of [JSON.stringify(goodFile), goodFile]) {
      const config = parse(source)
      expect(Object.isFrozen(config)).toBe(true)
      expect(config.issuer.href).toBe('https://login.corp.example/')
      expect(config.clientId).toBe('bff')
      expect(config.clientSecret).toBe('s3cret')
      expect(config.scopes).toBe('openid profile offline_access')
      // Normalised as BFF_API does, longest prefix first.
      expect(config.api.map((r) => [r.prefix, r.upstream.href])).toEqual([
        ['/api/admin/', 'http://127.0.0.1:4100/'],
        ['/api/', 'https://orders.internal/v1/'],
      ])
    }
  })

  it('takes scopes as a space-separated string, and defaults them as BFF_SCOPES', () => {
    const spaced = goodWith((f) => {
      ;(f.idps.corp as { scopes: unknown }).scopes = ' openid  email '
    })
    expect(parse(spaced).scopes).toBe('openid email')
    const none = goodWith((f) => {
      delete (f.idps.corp as { scopes?: unknown }).scopes
    })
    expect(parse(none).scopes).toBe('openid profile email offline_access')
  })

  it('leaves the IdP to the settings when the file has only routes, and the routes to BFF_API', () => {
    const env = {
      ...base,
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'env-client',
      BFF_CLIENT_SECRET: 'env-secret',
    }
    const config = parse({ routes: goodFile.routes }, env)
    expect(config.clientId).toBe('env-client')
    expect(config.api).toHaveLength(2)
    const idpOnly = parse(
      { idps: goodFile.idps },
      { ...base, CORP_SECRET: 'x', BFF_API: '/v/=http://127.0.0.1:1/' }
    )
    expect(idpOnly.api.map((r) => r.prefix)).toEqual(['/v/'])
  })
})

describe('BFF_CONFIG: refusals name the JSON path, all at once', () => {
  it('reports every problem of a file at once', () => {
    const file = goodWith((f) => {
      ;(f.idps.corp as Record<string, unknown>).isuer = 'typo'
      f.routes.push({ prefix: '/bff/x/', upstream: 'http://127.0.0.1:1/' })
      f.routes.push({ prefix: '/ok/', upstream: 'not a url' })
      f.extra = true
    })
    const problems = problemsOf(file)
    expect(problems).toEqual([
      'BFF_CONFIG idps.corp.isuer: is not a known key',
      'BFF_CONFIG extra: is not a known key',
    ])
    // Shape right, rules wrong: each route problem with its index and key.
    const rules = problemsOf(
      goodWith((f) => {
        f.routes.push({ prefix: '/bff/x/', upstream: 'http://127.0.0.1:1/' })
        f.routes.push({ prefix: '/ok/', upstream: 'not a url' })
        f.routes.push({ prefix: '/q/', upstream: 'https://svc.example/?a=1' })
        f.routes.push({ prefix: '/api/', upstream: 'https://again.example/' })
        f.idps.corp.issuer = 'http://login.corp.example'
      })
    )
    expect(rules).toEqual([
      'BFF_CONFIG idps.corp.issuer: must use https (http is allowed only on localhost), got "http://login.corp.example/"',
      'BFF_CONFIG routes[2].prefix: prefix "/bff/x/" must be a plain path starting with "/" and not under /bff',
      'BFF_CONFIG routes[3].upstream: must be an absolute http(s) URL, got "not a url"',
      'BFF_CONFIG routes[4].upstream: upstream "https://svc.example/?a=1" must not have a query or fragment',
      'BFF_CONFIG routes[5].prefix: prefix "/api/" appears twice',
    ])
  })

  it('refuses wrong types and missing keys with their paths', () => {
    const problems = problemsOf({
      idps: { corp: { issuer: 1, clientSecret: 'x', scopes: 7 } },
      routes: [{ prefix: '/api/' }, 'x'],
    })
    expect(problems).toEqual(
      expect.arrayContaining([
        'BFF_CONFIG idps.corp.issuer: must be a string',
        'BFF_CONFIG idps.corp.clientId: is required',
        'BFF_CONFIG idps.corp.scopes: must be an array of strings or a space-separated string',
        'BFF_CONFIG routes[0].upstream: is required',
      ])
    )
    expect(problems.some((p) => p.startsWith('BFF_CONFIG routes[1]: '))).toBe(true)
    // The file declares idps: the IdP settings it replaces are not reported missing.
    expect(problems.every((p) => p.startsWith('BFF_CONFIG '))).toBe(true)
  })

  it('requires openid in the scopes', () => {
    const problems = problemsOf(goodWith((f) => (f.idps.corp.scopes = ['profile'])))
    expect(problems).toEqual(['BFF_CONFIG idps.corp.scopes: must include "openid", got "profile"'])
  })

  it('takes several IdPs, each with its own callback and back-channel path, in order', () => {
    const file = goodWith((f) => {
      ;(f.idps as Record<string, unknown>).partner = {
        issuer: 'https://login.partner.example',
        clientId: 'partner-app',
        clientSecret: 'p',
        clientAuth: 'client_secret_post',
        claims: { roles: 'groups' },
      }
    })
    const config = parse(file)
    expect(
      config.idps.map(({ name, label, issuer, clientId, clientAuth, callbackPath, claims }) => ({
        name,
        label,
        issuer: issuer.href,
        clientId,
        clientAuth,
        callbackPath,
        claims,
      }))
    ).toEqual([
      {
        name: 'corp',
        label: 'Corporate login',
        issuer: 'https://login.corp.example/',
        clientId: 'bff',
        clientAuth: 'client_secret_basic',
        callbackPath: '/bff/callback/corp',
        claims: {},
      },
      {
        name: 'partner',
        label: 'partner',
        issuer: 'https://login.partner.example/',
        clientId: 'partner-app',
        clientAuth: 'client_secret_post',
        callbackPath: '/bff/callback/partner',
        claims: { roles: 'groups' },
      },
    ])
    expect(config.idps[1]!.backchannelPath).toBe('/bff/backchannel/partner')
    // The first IdP is the one the top-level fields describe.
    expect([config.idpName, config.clientId]).toEqual(['corp', 'bff'])
    expect(problemsOf({ idps: {} })).toEqual(['BFF_CONFIG idps: must name an IdP'])
  })

  it("names each IdP's problems under its own path", () => {
    const file = goodWith((f) => {
      ;(f.idps as Record<string, unknown>).partner = {
        issuer: 'http://login.partner.example',
        clientId: 'x',
        clientSecret: 'p',
        scopes: 'profile',
      }
    })
    expect(problemsOf(file)).toEqual([
      'BFF_CONFIG idps.partner.issuer: must use https (http is allowed only on localhost), got "http://login.partner.example/"',
      'BFF_CONFIG idps.partner.scopes: must include "openid", got "profile"',
    ])
    // BFF_CLIENT_AUTH is the default of an IdP without clientAuth, and named as itself.
    expect(problemsOf(goodFile, { ...base, CORP_SECRET: 's', BFF_CLIENT_AUTH: 'tls' })).toEqual([
      'BFF_CLIENT_AUTH must be one of client_secret_basic, client_secret_post, private_key_jwt, got "tls"',
    ])
  })

  it('names a missing ${NAME} and where it is used, without other noise', () => {
    expect(problemsOf(goodFile, base)).toEqual([
      'BFF_CONFIG idps.corp.clientSecret: environment variable CORP_SECRET is not set',
    ])
    // Replaced anywhere in a string, several times.
    const file = goodWith((f) => (f.routes[0]!.upstream = 'https://${HOST}:${PORT_X}/v1'))
    const config = parse(file, {
      ...base,
      CORP_SECRET: 's',
      HOST: 'orders.example',
      PORT_X: '8443',
    })
    expect(config.api.find((r) => r.prefix === '/api/')!.upstream.href).toBe(
      'https://orders.example:8443/v1/'
    )
  })

  it('stops when the file and the settings it replaces are both set, naming both', () => {
    const env = {
      ...base,
      CORP_SECRET: 's',
      BFF_ISSUER: 'https://idp.example.com',
      BFF_SCOPES: 'openid',
      BFF_API: '/x/=http://127.0.0.1:1/',
    }
    expect(problemsOf(goodFile, env)).toEqual([
      'BFF_CONFIG idps: and BFF_ISSUER, BFF_SCOPES are both set: keep one',
      'BFF_CONFIG routes: and BFF_API are both set: keep one',
    ])
  })

  it('says where JSON syntax breaks, and refuses a file that is not an object', () => {
    const [syntax, ...rest] = problemsOf('{\n  "idps": { "x": "hunter2" ,} }')
    // Where, but not the text around it: it may hold a secret.
    expect(syntax).toBe('BFF_CONFIG: is not valid JSON: error at line 2 column 29')
    // Without a file the settings are still checked.
    expect(rest).toContain('BFF_ISSUER is required')
    for (const notObject of ['[]', '"x"', 'null', '42', [], 'true']) {
      expect(problemsOf(notObject)).toContain('BFF_CONFIG: must be a JSON object')
    }
  })

  it('refuses inherited-looking keys as unknown instead of using them', () => {
    const problems = problemsOf('{"__proto__": {"idps": 1}, "routes": []}', {
      ...base,
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'c',
      BFF_CLIENT_SECRET: 's',
    })
    expect(problems).toEqual(['BFF_CONFIG __proto__: is not a known key'])
  })
})

describe('schema/bff-config.schema.json', () => {
  it('is the one generated from the valibot schema (else run npm run config:schema)', () => {
    const committed = readFileSync(
      new URL('../../../schema/bff-config.schema.json', import.meta.url),
      'utf8'
    )
    expect(committed).toBe(configJsonSchemaText())
  })
})
