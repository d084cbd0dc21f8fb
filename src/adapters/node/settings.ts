/**
 * What only the Node server reads from its environment: the listen address, the config file's
 * path and Redis. The core's options come from the same environment through `optionsFromEnv`;
 * `nodeConfigFromEnv` reads both and reports every problem of both in one ConfigError.
 */
import { readFileSync } from 'node:fs'
import { ConfigError, optionsFromEnv, type Config, type Env } from '../../core/config/env.ts'
import { DEFAULT_REDIS_URL, readRedisSettings, type RedisSettings } from './redis-connect.ts'

export { DEFAULT_REDIS_URL }

/** Redis: `BFF_REDIS_URL`, `BFF_REDIS_MODE` and Sentinel's settings in redis-connect.ts. */
export interface NodeSettings extends RedisSettings {
  /** `PORT`: where the server listens; 0 picks a free port. Default 3000. */
  port: number
  /** `HOST`: the address it listens on. Default `127.0.0.1`. */
  host: string
  /** The config file's text, read from the path in `BFF_CONFIG`; undefined without one. */
  configFile?: string
  /** `BFF_REDIS_PREFIX`: of every Redis key, so several BFFs (or tests) share one Redis. */
  redisPrefix: string
}

/**
 * The Node server's own settings.
 * @throws ConfigError naming each bad setting.
 */
export function nodeSettingsFromEnv(env: Env): NodeSettings {
  const problems: string[] = []
  const settings = readNodeSettings(env, problems)
  if (problems.length) throw new ConfigError(problems)
  return settings
}

/**
 * Everything a Node server reads from its environment: the core's options (`optionsFromEnv`, with
 * Node's defaults: `http://localhost:$PORT`, the cookie store, the file `BFF_CONFIG` names) and
 * Node's own settings.
 * @throws ConfigError with every problem of both, Node's first.
 */
export function nodeConfigFromEnv(env: Env): { config: Config; settings: NodeSettings } {
  const problems: string[] = []
  const settings = readNodeSettings(env, problems)
  let config: Config | undefined
  try {
    config = optionsFromEnv(env, {
      baseUrl: `http://localhost:${settings.port}`,
      sessionStore: 'cookie',
      configFile: settings.configFile,
    })
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    problems.push(...err.problems)
  }
  if (config?.sessionStore === 'durable-object') {
    problems.push('BFF_SESSION_STORE "durable-object" works only on Cloudflare Workers')
  }
  if (!config || problems.length) throw new ConfigError(problems)
  return { config, settings }
}

/** Node's settings, each problem pushed; a usable value stands in for a bad one. */
function readNodeSettings(env: Env, problems: string[]): NodeSettings {
  const get = (name: string) => {
    const value = env[name]?.trim()
    return value ? value : undefined
  }

  let port = Number(env.PORT ?? 3000)
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    problems.push(`PORT must be a port number, got "${env.PORT}"`)
    port = 3000
  }

  // BFF_CONFIG is a path here; the core takes the text.
  const configPath = get('BFF_CONFIG')
  let configFile: string | undefined
  if (configPath) {
    try {
      configFile = readFileSync(configPath, 'utf8')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error'
      problems.push(`BFF_CONFIG cannot read "${configPath}" (${code})`)
    }
  }

  // The URL may carry a password: problems name the setting, never echo it.
  const redis = readRedisSettings(env, problems)
  const redisPrefix = get('BFF_REDIS_PREFIX') ?? 'bff:'
  if (!/^[\w:.-]{1,64}$/.test(redisPrefix)) {
    problems.push(
      'BFF_REDIS_PREFIX must be 1-64 characters of letters, digits, ":", ".", "-" or "_"'
    )
  }

  return { port, host: env.HOST ?? '127.0.0.1', configFile, ...redis, redisPrefix }
}
