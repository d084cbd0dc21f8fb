import type { Env } from '../../core/config/env.ts'

/**
 * The settings among a Worker's bindings, as the strings `parseConfig` reads. wrangler makes an
 * unquoted `[vars]` value (`BFF_IDLE_TIMEOUT = 300`) a number binding, and a `true` a boolean:
 * they are settings too, and must be checked like any other, not silently left at the default.
 */
export function settingsOf(env: Record<string, unknown>): Env {
  const settings: Record<string, string> = {}
  for (const [name, value] of Object.entries(env)) {
    // No Redis on Workers: its settings do not apply (README), so a leftover one is not checked.
    if (name.startsWith('BFF_REDIS_')) continue
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
