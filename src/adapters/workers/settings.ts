import type { Env } from '../../core/config.ts'

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
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      settings[name] = String(value)
    }
  }
  return settings
}
