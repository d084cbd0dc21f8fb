/**
 * The package's `./workers` entry: the Worker (default export) and the Durable Object classes the
 * runtime finds among the entry module's exports. A wrangler.toml `main` re-exports them:
 * `export { default, SessionObject, SessionIndexObject } from 'bff-session-broker/workers'`.
 */
export { default, SessionIndexObject, SessionObject, type WorkerEnv } from './worker.ts'
export { durableObjectStore } from './session-store.ts'
export { durableObjectSessionEndBus } from './session-ends.ts'
export {
  handshakeRefusal,
  workersWebSockets,
  type WorkersWebSockets,
  type WorkersWebSocketsOptions,
} from './websocket.ts'
// For a Worker entry of one's own: subclass the base with a `refresher()` (see worker.ts).
export { SessionObjectBase, type SessionRefresher } from './session-object.ts'
export { sessionRefresherFor } from './session-refresher.ts'
export {
  durableObjectSharedTokenCoordinator,
  durableObjectRefreshCoordinator,
  durableObjectReplayGuard,
  durableObjectRevocations,
} from './coordination.ts'
export type { SessionObjectEnv } from './bindings.ts'
