/**
 * The package's `./node` entry: what a Node server needs beyond the core. `startNode` runs the
 * whole server from `BFF_*` settings; `nodeForward` sends proxied calls through undici for a host
 * app that mounts `createBff` itself. Redis parts are here too, and on their own in `./redis`.
 */
export { startNode, type NodeServer, type StartOptions } from './start.ts'
export { nodeForward, type NodeForwardOptions } from './upstream.ts'
export * from './redis.ts'
