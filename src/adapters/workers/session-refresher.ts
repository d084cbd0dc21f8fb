/**
 * The token refresh the session objects run, built from the Worker's own settings. The Workers
 * entry hands it to `SessionObject` (worker.ts), so the object's module needs no config, OIDC or
 * token code: the dependency points from the entry down, never from storage back up.
 */
import { parseConfig } from '../../core/config/env.ts'
import { createIdpRegistry } from '../../core/oidc/idps.ts'
import { createTokenManager } from '../../core/tokens/token-manager.ts'
import type { SessionRefresher } from './session-object.ts'
import { configFileOf, settingsOf } from './settings.ts'
import { now } from './test-clock.ts'

// One per isolate, shared by the session objects it hosts: its OIDC client caches the discovery
// document, and its token manager joins concurrent calls for one session generation into one grant.
let refresher: SessionRefresher | undefined

/** The isolate's refresher; a bad setting throws (ConfigError), as the Worker itself reports. */
export function sessionRefresherFor(env: Record<string, unknown>): SessionRefresher {
  if (!refresher) {
    const config = parseConfig(settingsOf(env), {
      sessionStore: 'durable-object',
      configFile: configFileOf(env),
    })
    const tokens = createTokenManager({
      // Each session refreshes at the IdP it logged in with.
      oidc: createIdpRegistry(config, { now }).oidcFor,
      skewSeconds: config.refreshSkewSeconds,
      now,
    })
    refresher = async (session, resource, trace) => {
      const result =
        resource === undefined
          ? await tokens.freshSession(session, trace)
          : await tokens.freshResource(session, resource, trace)
      if (result.kind === 'error') throw result.error
      return result.session
    }
  }
  return refresher
}
