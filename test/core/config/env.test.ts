import { describe, expect, it } from 'vitest'
import { ConfigError, parseConfig, type Env } from '../../../src/core/config/env.ts'

const SECRET = 'a-session-secret-of-at-least-32-characters!'
const OLD_SECRET = 'an-older-session-secret-still-32-chars-long'

const validEnv: Env = {
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'bff-client',
  BFF_CLIENT_SECRET: 'client-secret-value',
  BFF_BASE_URL: 'https://app.example.com',
  BFF_SESSION_SECRET: SECRET,
}

const env = (overrides: Record<string, string | undefined>): Env => ({ ...validEnv, ...overrides })

/** The problems parseConfig reports; fails the test when it does not throw a ConfigError. */
function problemsOf(input: Env, defaults?: Parameters<typeof parseConfig>[1]): readonly string[] {
  try {
    parseConfig(input, defaults)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    const configError = err as ConfigError
    expect(configError.code).toBe('invalid_config')
    expect(configError.message).toBe(configError.problems.join('\n'))
    return configError.problems
  }
  throw new Error('parseConfig accepted an invalid configuration')
}

/** Exactly one problem, and it names `variable` first. */
function expectOneProblem(input: Env, variable: string): string {
  const problems = problemsOf(input)
  expect(problems).toHaveLength(1)
  expect(problems[0]!.startsWith(`${variable} `)).toBe(true)
  return problems[0]!
}

describe('parseConfig: a valid environment', () => {
  it('parses into the documented Config with defaults', () => {
    const config = parseConfig(validEnv)
    expect(config.issuer).toBeInstanceOf(URL)
    expect(config.issuer.href).toBe('https://idp.example.com/')
    expect(config.clientId).toBe('bff-client')
    expect(config.clientSecret).toBe('client-secret-value')
    expect(config.baseUrl).toBe('https://app.example.com')
    expect(config.sessionSecrets).toEqual([SECRET])
    expect(config.scopes).toBe('openid profile email offline_access')
    expect(config.api).toEqual([])
    expect(config.sessionStore).toBe('cookie')
    expect(config.postLogoutRedirect).toBe('/')
    expect(config.refreshSkewSeconds).toBe(30)
    expect(config.sessionLifetimeSeconds).toBe(12 * 3600)
    expect(config.upstreamTimeoutMs).toBe(30_000)
    expect(config.idpTimeoutSeconds).toBe(10)
  })

  it('returns a frozen Config, including its lists', () => {
    const config = parseConfig(env({ BFF_API: '/api/=http://127.0.0.1:4000/' }))
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.sessionSecrets)).toBe(true)
    expect(Object.isFrozen(config.api)).toBe(true)
    expect(Object.isFrozen(config.api[0])).toBe(true)
    // ES modules run in strict mode: writing to a frozen object throws.
    expect(() => {
      ;(config as { clientId: string }).clientId = 'attacker'
    }).toThrow(TypeError)
    expect(() => {
      ;(config.sessionSecrets as string[]).push('x'.repeat(40))
    }).toThrow(TypeError)
    expect(config.clientId).toBe('bff-client')
  })

  it('takes the store and base URL from the runtime defaults when unset', () => {
    const config = parseConfig(env({ BFF_BASE_URL: undefined }), {
      baseUrl: 'http://localhost:3000',
      sessionStore: 'durable-object',
    })
    expect(config.sessionStore).toBe('durable-object')
    expect(config.baseUrl).toBe('http://localhost:3000')
  })

  it('lets explicit settings win over the runtime defaults', () => {
    const config = parseConfig(env({ BFF_SESSION_STORE: 'redis' }), {
      baseUrl: 'http://localhost:3000',
      sessionStore: 'durable-object',
    })
    expect(config.sessionStore).toBe('redis')
    expect(config.baseUrl).toBe('https://app.example.com')
  })

  it('reads the optional settings', () => {
    const config = parseConfig(
      env({
        BFF_SCOPES: 'openid   email',
        BFF_POST_LOGOUT_REDIRECT: '/goodbye?x=1',
        BFF_REFRESH_SKEW: '45',
        BFF_SESSION_LIFETIME: '3600',
      })
    )
    expect(config.scopes).toBe('openid email')
    expect(config.postLogoutRedirect).toBe('/goodbye?x=1')
    expect(config.refreshSkewSeconds).toBe(45)
    expect(config.sessionLifetimeSeconds).toBe(3600)
  })

  it('strips a trailing slash from the base URL', () => {
    expect(parseConfig(env({ BFF_BASE_URL: 'https://app.example.com/' })).baseUrl).toBe(
      'https://app.example.com'
    )
  })
})

describe('parseConfig: required settings', () => {
  for (const name of ['BFF_ISSUER', 'BFF_CLIENT_ID', 'BFF_CLIENT_SECRET', 'BFF_SESSION_SECRET']) {
    it(`reports a missing ${name} by name`, () => {
      expectOneProblem(env({ [name]: undefined }), name)
    })

    it(`treats a blank ${name} as missing`, () => {
      expectOneProblem(env({ [name]: '   ' }), name)
    })
  }
})

describe('parseConfig: session secrets', () => {
  it('rejects a secret shorter than 32 characters without echoing it', () => {
    const short = 'short-but-secret-Xq9'
    let caught: unknown
    try {
      parseConfig(env({ BFF_SESSION_SECRET: short }))
    } catch (err) {
      caught = err
    }
    expect(caught).toBeInstanceOf(ConfigError)
    const error = caught as ConfigError
    expect(error.problems).toHaveLength(1)
    expect(error.problems[0]!.startsWith('BFF_SESSION_SECRET ')).toBe(true)
    expect(error.message).not.toContain(short)
    expect(error.message).not.toContain('Xq9')
    expect(String(error.stack)).not.toContain(short)
  })

  it('accepts exactly 32 characters and rejects 31', () => {
    expect(parseConfig(env({ BFF_SESSION_SECRET: 'x'.repeat(32) })).sessionSecrets).toEqual([
      'x'.repeat(32),
    ])
    expectOneProblem(env({ BFF_SESSION_SECRET: 'x'.repeat(31) }), 'BFF_SESSION_SECRET')
  })

  it('parses comma-separated secrets in order, for rotation', () => {
    const config = parseConfig(env({ BFF_SESSION_SECRET: ` ${SECRET} , ${OLD_SECRET} ` }))
    expect(config.sessionSecrets).toEqual([SECRET, OLD_SECRET])
  })

  it('rejects a rotation list with one short entry, naming neither value', () => {
    const short = 'tiny-old-secret'
    const problem = expectOneProblem(
      env({ BFF_SESSION_SECRET: `${SECRET},${short}` }),
      'BFF_SESSION_SECRET'
    )
    expect(problem).not.toContain(short)
    expect(problem).not.toContain(SECRET)
  })
})

describe('parseConfig: several problems at once', () => {
  it('reports every bad setting, one line each, starting with the variable name', () => {
    const problems = problemsOf({
      BFF_ISSUER: 'http://idp.example.com',
      BFF_BASE_URL: 'https://app.example.com/app',
      BFF_SESSION_SECRET: 'short',
      BFF_SESSION_STORE: 'postgres',
      BFF_POST_LOGOUT_REDIRECT: 'https://evil.example',
      BFF_API: '/bff/x/=http://127.0.0.1:4000/',
    })
    const names = problems.map((p) => p.split(' ')[0])
    expect(names.sort()).toEqual(
      [
        'BFF_API',
        'BFF_BASE_URL',
        'BFF_CLIENT_ID',
        'BFF_CLIENT_SECRET',
        'BFF_ISSUER',
        'BFF_POST_LOGOUT_REDIRECT',
        'BFF_SESSION_SECRET',
        'BFF_SESSION_STORE',
      ].sort()
    )
    for (const problem of problems) {
      expect(problem).not.toContain('\n')
      expect(problem).toMatch(/^BFF_[A-Z_]+ \S/)
    }
  })
})

describe('parseConfig: BFF_API', () => {
  const api = (value: string) => parseConfig(env({ BFF_API: value })).api

  it('parses one route', () => {
    const routes = api('/api/=http://127.0.0.1:4000/')
    expect(routes).toHaveLength(1)
    expect(routes[0]!.prefix).toBe('/api/')
    expect(routes[0]!.upstream).toBeInstanceOf(URL)
    expect(routes[0]!.upstream.href).toBe('http://127.0.0.1:4000/')
  })

  it('sorts several routes longest prefix first', () => {
    const routes = api(
      '/api/=http://127.0.0.1:4000/, /api/v2/reports/=https://reports.example/, /api/v2/=https://v2.example/'
    )
    expect(routes.map((r) => r.prefix)).toEqual(['/api/v2/reports/', '/api/v2/', '/api/'])
    expect(routes.map((r) => r.upstream.origin)).toEqual([
      'https://reports.example',
      'https://v2.example',
      'http://127.0.0.1:4000',
    ])
  })

  it('normalises the prefix and the upstream path to end with a slash', () => {
    const [route] = api('/api=http://127.0.0.1:4000/base')
    expect(route!.prefix).toBe('/api/')
    expect(route!.upstream.href).toBe('http://127.0.0.1:4000/base/')
  })

  const rejected: Array<[string, string]> = [
    ['a prefix under /bff', '/bff/api/=http://127.0.0.1:4000/'],
    ['the /bff prefix itself', '/bff=http://127.0.0.1:4000/'],
    ['a prefix with ..', '/api/../bff/=http://127.0.0.1:4000/'],
    ['a relative prefix', 'api/=http://127.0.0.1:4000/'],
    ['a prefix with a query', '/api/?x=1=http://127.0.0.1:4000/'],
    ['an entry without =', '/api/http://127.0.0.1:4000/'],
    ['an entry with an empty prefix', '=http://127.0.0.1:4000/'],
    ['an entry with an empty upstream', '/api/='],
    ['a duplicate prefix', '/api=http://127.0.0.1:4000/,/api/=http://127.0.0.1:5000/'],
    ['an upstream with a query', '/api/=http://127.0.0.1:4000/?tenant=1'],
    ['an upstream with a fragment', '/api/=http://127.0.0.1:4000/#x'],
    ['a non-http upstream', '/api/=ftp://files.example/'],
    ['a file: upstream', '/api/=file:///etc/passwd'],
    ['a javascript: upstream', '/api/=javascript:alert(1)'],
    ['a relative upstream', '/api/=/internal/'],
    ['an upstream with credentials', '/api/=http://user:pw@127.0.0.1:4000/'],
  ]
  for (const [what, value] of rejected) {
    it(`rejects ${what}`, () => {
      expectOneProblem(env({ BFF_API: value }), 'BFF_API')
    })
  }

  it('reports each bad entry and keeps checking the others', () => {
    const problems = problemsOf(
      env({ BFF_API: '/bff/=http://a.example/,/ok/=http://b.example/,/x/=ftp://c.example/' })
    )
    expect(problems).toHaveLength(2)
    for (const p of problems) expect(p.startsWith('BFF_API ')).toBe(true)
  })

  it('never echoes upstream credentials', () => {
    const problem = expectOneProblem(
      env({ BFF_API: '/api/=https://svc:hunter2-pass@api.example/' }),
      'BFF_API'
    )
    expect(problem).not.toContain('hunter2-pass')
  })
})

describe('parseConfig: other settings', () => {
  for (const name of ['BFF_UPSTREAM_TIMEOUT', 'BFF_IDP_TIMEOUT']) {
    it(`rejects a ${name} longer than an hour (a timer that long fires at once)`, () => {
      expect(expectOneProblem(env({ [name]: '2200000' }), name)).toContain('from')
      expect(parseConfig(env({ [name]: '3600' }))).toBeDefined()
    })
  }

  it('reads the limits of live connections, 16 per session and 20 000 per instance by default', () => {
    expect(parseConfig(validEnv)).toMatchObject({
      liveMaxPerSession: 16,
      liveMaxPerInstance: 20_000,
    })
    expect(parseConfig(env({ BFF_LIVE_MAX_PER_SESSION: '3', BFF_LIVE_MAX: '500' }))).toMatchObject({
      liveMaxPerSession: 3,
      liveMaxPerInstance: 500,
    })
  })

  it('BFF_CLIENT_AUTH: client_secret_basic by default, client_secret_post on request', () => {
    expect(parseConfig(validEnv).clientAuth).toBe('client_secret_basic')
    for (const method of ['client_secret_basic', 'client_secret_post']) {
      expect(parseConfig(env({ BFF_CLIENT_AUTH: method })).clientAuth).toBe(method)
    }
  })

  for (const value of ['post', 'client_secret_jwt', 'none', 'CLIENT_SECRET_POST']) {
    it(`rejects BFF_CLIENT_AUTH=${value}, naming the setting and the choices`, () => {
      const problem = expectOneProblem(env({ BFF_CLIENT_AUTH: value }), 'BFF_CLIENT_AUTH')
      expect(problem).toContain('client_secret_basic, client_secret_post')
      expect(problem).toContain(value)
    })
  }

  it('rejects an unknown BFF_SESSION_STORE', () => {
    const problem = expectOneProblem(env({ BFF_SESSION_STORE: 'postgres' }), 'BFF_SESSION_STORE')
    expect(problem).toContain('postgres')
  })

  for (const kind of ['cookie', 'memory', 'redis', 'durable-object']) {
    it(`accepts BFF_SESSION_STORE=${kind}`, () => {
      expect(parseConfig(env({ BFF_SESSION_STORE: kind })).sessionStore).toBe(kind)
    })
  }

  for (const base of [
    'https://app.example.com/app',
    'https://app.example.com/?x=1',
    'https://app.example.com/#x',
    'app.example.com',
    'ftp://app.example.com',
  ]) {
    it(`rejects BFF_BASE_URL=${base}`, () => {
      expectOneProblem(env({ BFF_BASE_URL: base }), 'BFF_BASE_URL')
    })
  }

  for (const issuer of [
    'http://idp.example.com',
    'http://127.0.0.1.evil.example',
    'http://localhost.evil.example',
    'http://10.0.0.5:8080',
  ]) {
    it(`rejects the plain-http issuer ${issuer}`, () => {
      expectOneProblem(env({ BFF_ISSUER: issuer }), 'BFF_ISSUER')
    })
  }

  for (const issuer of [
    'http://127.0.0.1:9000',
    'http://localhost:9000/realms/x',
    'http://[::1]:9000',
  ]) {
    it(`accepts the loopback issuer ${issuer}`, () => {
      expect(parseConfig(env({ BFF_ISSUER: issuer })).issuer.href).toBe(new URL(issuer).href)
    })
  }

  for (const base of [
    'http://app.example.com',
    'http://127.0.0.1.evil.example',
    'http://localhost.evil.example',
    'http://10.0.0.5:8080',
  ]) {
    it(`rejects the plain-http BFF_BASE_URL ${base} (cookies would lose Secure and __Host-)`, () => {
      expect(expectOneProblem(env({ BFF_BASE_URL: base }), 'BFF_BASE_URL')).toMatch(/https/)
    })
  }

  for (const base of ['http://127.0.0.1:3000', 'http://localhost:3000', 'http://[::1]:3000']) {
    it(`accepts the loopback BFF_BASE_URL ${base}`, () => {
      expect(parseConfig(env({ BFF_BASE_URL: base })).baseUrl).toBe(new URL(base).origin)
    })
  }

  it('rejects an issuer that is not a URL', () => {
    expectOneProblem(env({ BFF_ISSUER: 'idp.example.com' }), 'BFF_ISSUER')
  })

  for (const target of [
    '//evil.example',
    'https://evil.example',
    '/\\evil.example',
    'evil',
    '/a\nb',
  ]) {
    it(`rejects BFF_POST_LOGOUT_REDIRECT=${JSON.stringify(target)}`, () => {
      expectOneProblem(env({ BFF_POST_LOGOUT_REDIRECT: target }), 'BFF_POST_LOGOUT_REDIRECT')
    })
  }

  it('rejects scopes without openid', () => {
    expectOneProblem(env({ BFF_SCOPES: 'profile email' }), 'BFF_SCOPES')
  })

  for (const [name, value] of [
    ['BFF_REFRESH_SKEW', '-1'],
    ['BFF_REFRESH_SKEW', 'soon'],
    ['BFF_SESSION_LIFETIME', '10'],
    ['BFF_SESSION_LIFETIME', 'Infinity'],
    ['BFF_LIVE_MAX_PER_SESSION', '0'],
    ['BFF_LIVE_MAX_PER_SESSION', '2.5'],
    ['BFF_LIVE_MAX_PER_SESSION', 'many'],
    ['BFF_LIVE_MAX', '0'],
    ['BFF_LIVE_MAX', '2000000'],
  ] as const) {
    it(`rejects ${name}=${value}`, () => {
      expectOneProblem(env({ [name]: value }), name)
    })
  }
})
