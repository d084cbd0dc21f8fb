/**
 * The library entry: `createBff(config, deps)` builds the BFF as a Hono app (src/core/app.ts).
 * The runtime entries built on it: src/adapters/node/server.ts and src/adapters/workers/worker.ts.
 */
export { createBff, notFound, type BffDeps } from './core/app.ts'
export { parseConfig, ConfigError, type Config, type Env } from './core/config/env.ts'
export { BffError } from './core/errors.ts'
export type { Session, SessionStore, SessionRef } from './core/session/types.ts'
export type { BffEnv } from './core/hono-env.ts'
export type { RefreshCoordinator } from './core/tokens/refresh-coordinator.ts'
