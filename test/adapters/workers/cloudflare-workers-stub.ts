/**
 * Node stand-in for `cloudflare:workers` (aliased in vitest.config.ts for the workerd project), so
 * tests can import the client half of the Durable Object store and drive the real objects in
 * workerd through Miniflare. The object classes are never instantiated in Node.
 */
export class DurableObject<Env = unknown> {
  constructor(
    protected ctx: unknown,
    protected env: Env
  ) {}
}
