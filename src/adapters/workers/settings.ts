/**
 * What only a Worker reads from its bindings: the `BFF_*` settings as strings for the core's
 * `optionsFromEnv`, the config file, and the checks no other runtime has (the Durable Object
 * bindings the store needs, a test clock that must never be a setting).
 */
import type { Env } from '../../core/config/env.ts'
import { testClockOf } from './test-clock.ts'

/**
 * The settings among a Worker's bindings, as the strings `optionsFromEnv` reads. wrangler makes an
 * unquoted `[vars]` value (`BFF_IDLE_TIMEOUT = 300`) a number binding, and a `true` a boolean:
 * they are settings too, and must be checked like any other, not silently left at the default.
 * The Redis settings are Node's (src/adapters/node/settings.ts): nothing here reads them.
 */
export function settingsOf(env: Record<string, unknown>): Env {
  const settings: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    if (name === 'BFF_CONFIG') continue // the file itself, see configFileOf
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      settings[name] = String(value)
    }
  }
  return settings
}

/**
 * The config file on Workers: `BFF_CONFIG` holds the JSON itself, a `[vars]` table (an object) or
 * a string; undefined when unset.
 */
export function configFileOf(env: Record<string, unknown>): unknown {
  return env.BFF_CONFIG
}

/** A test clock given as a variable or secret: refused, it must be the test's service binding. */
export function testClockProblems(env: { BFF_TEST_CLOCK?: unknown }): string[] {
  if (env.BFF_TEST_CLOCK === undefined || testClockOf(env)) return []
  return ['BFF_TEST_CLOCK is a test-only service binding, never a variable or secret: remove it']
}

/** What the named store needs on Workers: not Redis, and the Durable Object bindings. */
export function storeProblems(env: Record<string, unknown>, store: string): string[] {
  const problems: string[] = []
  if (store === 'redis') {
    problems.push('BFF_SESSION_STORE "redis" works only on Node; use durable-object or cookie')
  }
  // Both stores but memory need the objects: the cookie store keeps its revocations there.
  for (const binding of ['BFF_SESSIONS', 'BFF_SESSION_INDEX']) {
    if (store !== 'memory' && !env[binding]) {
      problems.push(`${binding} must be bound to a Durable Object namespace (see wrangler.toml)`)
    }
  }
  return problems
}
