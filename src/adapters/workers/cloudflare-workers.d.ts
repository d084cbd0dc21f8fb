/**
 * Types for the one runtime module the Workers code imports. The package's global (ambient) types
 * would clash with the DOM and Node types the rest of the project compiles against, so only the
 * importable flavour is used, and this shim maps `cloudflare:workers` onto it.
 */
declare module 'cloudflare:workers' {
  import type { CloudflareWorkersModule } from '@cloudflare/workers-types/latest'

  export const DurableObject: typeof CloudflareWorkersModule.DurableObject
  export type DurableObject<Env = unknown> = CloudflareWorkersModule.DurableObject<Env>
  /** The Worker's bindings at module scope (runtimes since 2025; undefined before). */
  export const env: Record<string, unknown> | undefined
}
