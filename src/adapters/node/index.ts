/**
 * The package's `./node` entry: what a Node server needs beyond the core. `startNode` runs the
 * whole server from `BFF_*` settings; `nodeConfigFromEnv` reads the same settings for a host app
 * that mounts `createBff` itself (the core's options and Node's own, PORT, HOST and Redis, with
 * every problem in one ConfigError); `nodeForward` sends proxied calls through undici. Redis parts
 * are here too, and on their own in `./redis`.
 */
export { startNode, type NodeServer, type StartOptions } from './start.ts'
export {
  DEFAULT_REDIS_URL,
  nodeConfigFromEnv,
  nodeSettingsFromEnv,
  type NodeSettings,
} from './settings.ts'
export { nodeForward, type NodeForwardOptions } from './upstream.ts'
export { nodeHmac, nodeIron, nodeSealer } from './crypto.ts'
export {
  nodeWebSockets,
  type NodeWebSockets,
  type NodeWebSocketsOptions,
  type UpgradeFetch,
} from './websocket.ts'
export { nodeTracing, otelTracer, tracesEndpoint, type NodeTracing } from './tracing.ts'
export * from './redis.ts'
