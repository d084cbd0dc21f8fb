/**
 * The Durable Object bindings of the Worker and the stubs of the objects behind them. Sharding: one
 * `SessionObject` per session id holds that session, so sessions never contend with each other and
 * each one is strongly consistent (a Durable Object is a single instance worldwide). One
 * `SessionIndexObject` per IdP `sid` and per `sub` lists the session ids that carry it, so
 * back-channel logout finds every session without a scan; others hold one-time keys.
 */
import type { DurableObjectNamespace } from '@cloudflare/workers-types/latest'
import type { SessionIndexObject } from './session-index-object.ts'
import type { SessionObjectBase } from './session-object.ts'

/** The bindings the store and its objects use (names as in wrangler.toml), next to `BFF_*` vars. */
export interface SessionObjectEnv {
  /** One object per session id. */
  BFF_SESSIONS: DurableObjectNamespace<SessionObjectBase>
  /** One object per `sid:<sid>`, `sub:<sub>`, `once:<key>` and `token:<key>`. */
  BFF_SESSION_INDEX: DurableObjectNamespace<SessionIndexObject>
  /** Test-only, see `syncTestClock`: a service binding; anything else is refused. */
  BFF_TEST_CLOCK?: unknown
  [setting: string]: unknown
}

export function sessionObject(env: SessionObjectEnv, id: string) {
  return env.BFF_SESSIONS.get(env.BFF_SESSIONS.idFromName(id))
}

export type IndexKind = 'sid' | 'sub' | 'once' | 'health' | 'token'

export function indexObject(env: SessionObjectEnv, kind: IndexKind, key: string) {
  return env.BFF_SESSION_INDEX.get(env.BFF_SESSION_INDEX.idFromName(`${kind}:${key}`))
}
