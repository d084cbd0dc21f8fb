import type { Fetcher } from '@cloudflare/workers-types/latest'

/** The test clock's service binding, or undefined when there is none (or it is no binding). */
export function testClockOf(env: { BFF_TEST_CLOCK?: unknown }): Fetcher | undefined {
  const clock = env.BFF_TEST_CLOCK as Partial<Fetcher> | undefined
  return typeof clock?.fetch === 'function' ? (clock as Fetcher) : undefined
}

/*
 * Test clock. Integration tests move the BFF's clock forward to expire access tokens without
 * waiting; on Node they inject `deps.now`, but code inside workerd cannot be reached from the test
 * process. So when the Worker has a *service binding* named `BFF_TEST_CLOCK`, every request and
 * every object call first asks it for an offset in milliseconds, which `now()` adds to `Date.now()`.
 *
 * It cannot be switched on by accident: `[vars]` and secrets are strings (or numbers, booleans)
 * and a service binding is none of these; any such `BFF_TEST_CLOCK` is refused as a configuration
 * error (src/adapters/workers/settings.ts); wrangler.toml binds no such service, and only the test
 * harness (Miniflare, test/adapters/workers/workerd.ts) provides one. While it is on, each isolate
 * logs a warning once.
 */
let clockOffsetMs = 0
let clockWarned = false

/** Epoch milliseconds: `Date.now()` plus the test clock's offset (always 0 in production). */
export function now(): number {
  return Date.now() + clockOffsetMs
}

/** Reads the test clock's offset when the test-only binding exists; does nothing otherwise. */
export async function syncTestClock(env: { BFF_TEST_CLOCK?: unknown }): Promise<void> {
  const clock = testClockOf(env)
  if (!clock) return
  if (!clockWarned) {
    clockWarned = true
    console.warn(JSON.stringify({ level: 'warn', event: 'test_clock.enabled' }))
  }
  const offset = Number(await (await clock.fetch('http://test-clock/')).text())
  if (!Number.isFinite(offset)) throw new Error('BFF_TEST_CLOCK answered no number')
  clockOffsetMs = offset
}
