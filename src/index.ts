/**
 * The library entry: `createBff(options, deps)` builds the BFF as a Hono app (src/core/app.ts);
 * `optionsFromEnv(env)` reads its options from the `BFF_*` settings. The runtime entries built on
 * it: src/adapters/node/server.ts and src/adapters/workers/worker.ts.
 */
export { createBff, notFound, type BffDeps } from './core/app.ts'
export {
  ConfigError,
  type ApiRoute,
  type BffOptions,
  type ClientAuthMethod,
  type Config,
  type IdpConfig,
  type IdpOptions,
  type RouteOptions,
  type SessionStoreKind,
} from './core/config/options.ts'
export { optionsFromEnv, parseConfig, type Env, type FromEnvOptions } from './core/config/env.ts'
export { BffError } from './core/errors.ts'
export type { Session, SessionStore, SessionRef } from './core/session/types.ts'
export type { BffEnv } from './core/hono-env.ts'
export type { Span, SpanAttributes, TraceContext, Tracer } from './core/observe/trace.ts'
export type { RefreshCoordinator } from './core/tokens/refresh-coordinator.ts'
