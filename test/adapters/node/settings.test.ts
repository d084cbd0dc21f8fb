/**
 * Node's own settings (PORT, HOST, BFF_CONFIG's path, Redis), outside the core's options, and
 * reported together with the core's problems in one ConfigError.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  DEFAULT_REDIS_URL,
  nodeConfigFromEnv,
  nodeSettingsFromEnv,
} from '../../../src/adapters/node/settings.ts'
import { ConfigError, optionsFromEnv, type Env } from '../../../src/core/config/env.ts'

const core: Env = {
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'bff-client',
  BFF_CLIENT_SECRET: 'client-secret-value',
  BFF_SESSION_SECRET: 'a-session-secret-of-at-least-32-characters!',
}

function problemsOf(read: () => unknown): readonly string[] {
  try {
    read()
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('the settings were accepted')
}

describe('nodeSettingsFromEnv', () => {
  it('has the documented defaults', () => {
    expect(nodeSettingsFromEnv({})).toEqual({
      port: 3000,
      host: '127.0.0.1',
      configFile: undefined,
      redisUrl: undefined,
      redisMode: 'single',
      redisPrefix: 'bff:',
    })
    expect(DEFAULT_REDIS_URL).toBe('redis://127.0.0.1:6379')
  })

  it('reads PORT, HOST and the Redis settings', () => {
    const settings = nodeSettingsFromEnv({
      PORT: '0',
      HOST: '::1',
      BFF_REDIS_URL: ' rediss://:pw@redis.internal:6380/2 ',
      BFF_REDIS_PREFIX: 'app-1:',
    })
    expect(settings).toMatchObject({
      port: 0,
      host: '::1',
      redisUrl: 'rediss://:pw@redis.internal:6380/2',
      redisPrefix: 'app-1:',
    })
  })

  for (const [what, url] of [
    ['a bad BFF_REDIS_URL', 'http://default:s3cret-redis-pw@redis.internal:6379'],
    ['a BFF_REDIS_URL given without a scheme', 'default:s3cret-redis-pw@redis.internal:6379'],
    ['a BFF_REDIS_URL password that contains a raw @', 'http://default:p@s3cret-redis-pw@r:6379'],
  ]) {
    it(`redacts the password of ${what}`, () => {
      const problems = problemsOf(() => nodeSettingsFromEnv({ BFF_REDIS_URL: url }))
      expect(problems).toEqual(['BFF_REDIS_URL must start with redis:// or rediss://'])
      expect(problems.join('\n')).not.toContain('s3cret-redis-pw')
    })
  }

  it('reads a Cluster seed list and a Sentinel set-up', () => {
    const seeds = 'redis://:pw@10.0.0.1:7000, redis://:pw@10.0.0.2:7000,redis://:pw@[::1]:7000'
    expect(nodeSettingsFromEnv({ BFF_REDIS_MODE: 'cluster', BFF_REDIS_URL: seeds })).toMatchObject({
      redisMode: 'cluster',
      redisUrl: seeds,
    })
    const sentinels = 'rediss://:pw@s1:26379/2,rediss://:pw@s2/2'
    expect(
      nodeSettingsFromEnv({
        BFF_REDIS_MODE: 'sentinel',
        BFF_REDIS_URL: sentinels,
        BFF_REDIS_SENTINEL_NAME: 'mymaster',
        BFF_REDIS_SENTINEL_PASSWORD: 'sentinel-pw',
      })
    ).toMatchObject({
      redisMode: 'sentinel',
      redisUrl: sentinels,
      redisSentinelName: 'mymaster',
      redisSentinelPassword: 'sentinel-pw',
    })
  })

  for (const [what, env, problem] of [
    [
      'an unknown mode',
      { BFF_REDIS_MODE: 'ring' },
      'BFF_REDIS_MODE must be one of single, cluster, sentinel, got "ring"',
    ],
    [
      'cluster without seeds',
      { BFF_REDIS_MODE: 'cluster' },
      'BFF_REDIS_URL is required with BFF_REDIS_MODE=cluster',
    ],
    [
      'a list in single mode',
      { BFF_REDIS_URL: 'redis://:s3cret-redis-pw@a:1,redis://b:2' },
      'BFF_REDIS_URL lists several URLs: set BFF_REDIS_MODE to cluster or sentinel',
    ],
    [
      'a seed without a scheme',
      { BFF_REDIS_MODE: 'cluster', BFF_REDIS_URL: 'redis://a:1,s3cret-redis-pw@b:2' },
      'BFF_REDIS_URL must start with redis:// or rediss://',
    ],
    [
      'seeds with different passwords',
      { BFF_REDIS_MODE: 'cluster', BFF_REDIS_URL: 'redis://:s3cret-redis-pw@a:1,redis://b:2' },
      'BFF_REDIS_URL must give every URL the same scheme, credentials and database',
    ],
    [
      'a database on a Cluster',
      { BFF_REDIS_MODE: 'cluster', BFF_REDIS_URL: 'redis://:s3cret-redis-pw@a:1/3' },
      'BFF_REDIS_URL cannot name a database in cluster mode (a Cluster has only 0)',
    ],
    [
      'sentinels without a name',
      { BFF_REDIS_MODE: 'sentinel', BFF_REDIS_URL: 'redis://:s3cret-redis-pw@s:26379' },
      'BFF_REDIS_SENTINEL_NAME is required with BFF_REDIS_MODE=sentinel',
    ],
    [
      'a sentinel name in another mode',
      { BFF_REDIS_SENTINEL_NAME: 'mymaster' },
      'BFF_REDIS_SENTINEL_NAME is set but BFF_REDIS_MODE is not sentinel',
    ],
  ] as const) {
    it(`refuses ${what}, naming the setting and no password`, () => {
      const problems = problemsOf(() => nodeSettingsFromEnv(env))
      expect(problems).toEqual([problem])
      expect(problems.join('\n')).not.toContain('s3cret-redis-pw')
    })
  }

  it('reports every bad setting at once', () => {
    const problems = problemsOf(() =>
      nodeSettingsFromEnv({
        PORT: '70000',
        BFF_REDIS_PREFIX: 'bad prefix!',
        BFF_CONFIG: '/nonexistent/x.json',
      })
    )
    expect(problems.map((p) => p.split(' ')[0])).toEqual(['PORT', 'BFF_CONFIG', 'BFF_REDIS_PREFIX'])
  })
})

describe('the core does not read Node settings', () => {
  it('optionsFromEnv ignores PORT and the Redis settings, and its Config has none of them', () => {
    const config = optionsFromEnv({
      ...core,
      BFF_BASE_URL: 'https://app.example.com',
      PORT: 'abc',
      BFF_REDIS_URL: 'http://not-redis',
      BFF_REDIS_PREFIX: 'bad prefix!',
    })
    expect(Object.keys(config).filter((key) => /redis|port|host/i.test(key))).toEqual([])
  })
})

describe('nodeConfigFromEnv', () => {
  it("names Node's problems and the core's in one ConfigError, Node's first", () => {
    const problems = problemsOf(() =>
      nodeConfigFromEnv({ ...core, PORT: 'x', BFF_CLIENT_ID: undefined, BFF_REDIS_URL: 'x' })
    )
    expect(problems).toEqual([
      'PORT must be a port number, got "x"',
      'BFF_REDIS_URL must start with redis:// or rediss://',
      'BFF_CLIENT_ID is required: the client id registered at the IdP',
    ])
  })

  it('defaults the base URL to localhost on PORT, and the store to cookie', () => {
    const { config, settings } = nodeConfigFromEnv({ ...core, PORT: '8081' })
    expect(config.baseUrl).toBe('http://localhost:8081')
    expect(config.sessionStore).toBe('cookie')
    expect(settings.port).toBe(8081)
  })

  it('refuses the durable-object store, which only Workers have', () => {
    expect(
      problemsOf(() => nodeConfigFromEnv({ ...core, BFF_SESSION_STORE: 'durable-object' }))
    ).toEqual(['BFF_SESSION_STORE "durable-object" works only on Cloudflare Workers'])
  })

  it('reads the file BFF_CONFIG names, even when PORT is wrong', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bff-settings-'))
    try {
      const file = path.join(dir, 'bff.json')
      await writeFile(
        file,
        JSON.stringify({
          idps: {
            corp: { issuer: 'https://login.corp.example', clientId: 'c', clientSecret: 's' },
          },
        })
      )
      const env = { BFF_SESSION_SECRET: core.BFF_SESSION_SECRET, BFF_CONFIG: file }
      expect(nodeConfigFromEnv(env).config.issuer.href).toBe('https://login.corp.example/')
      // Only the port: the IdP settings the file replaces are not reported missing.
      expect(problemsOf(() => nodeConfigFromEnv({ ...env, PORT: '-1' }))).toEqual([
        'PORT must be a port number, got "-1"',
      ])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
