/**
 * Runs the Worker bundle (`npm run build:worker`, built once by global-setup.ts) in the real
 * `workerd` runtime through Miniflare, with wrangler.toml's bindings, on a loopback port. The test
 * process reaches into it only through Miniflare: the Durable Objects for sessions, and the
 * test-only `BFF_TEST_CLOCK` service binding, a function in this process.
 *
 * Outside vitest (the e2e suite), pass `build` from `buildWorker()` in build.ts.
 */
import type { Readable } from 'node:stream'
import { Miniflare, type WorkerOptions } from 'miniflare'
import type { SessionEnd } from '../../../src/core/session/live.ts'
import type { Session } from '../../../src/core/session/types.ts'
import type { WorkerBuild } from './build.ts'

export type { WorkerBuild } from './build.ts'

declare module 'vitest' {
  export interface ProvidedContext {
    workerBuild: WorkerBuild
  }
}

export interface WorkerdOptions {
  /** The bundle; by default the one global-setup.ts built for this vitest run. */
  build?: WorkerBuild
  /** Loopback port; 0 picks a free one. */
  port: number
  /** Serve public/ as wrangler.toml's `[assets]` do (off: the integration tests need no SPA). */
  assets?: boolean
  /**
   * `BFF_*` settings on top of wrangler.toml's `[vars]`; numbers and booleans as wrangler makes
   * them of unquoted values, objects as of a `[vars]` table (BFF_CONFIG).
   */
  env: Record<string, string | number | boolean | object | undefined>
  /** The test clock's offset in milliseconds, asked for on every request. */
  clockOffsetMs?: () => number
  /**
   * Names of more Workers running the same bundle: each is another isolate with its own memory,
   * sharing the Durable Objects with the first, like two Cloudflare machines. Reach them with
   * `urlOf(name)`.
   */
  isolates?: string[]
  /**
   * More service bindings of the Worker, as Miniflare takes them: e.g. a workerd `network` service
   * with a client key pair, standing in for an `mtls_certificates` binding (Miniflare has no local
   * emulation of those).
   */
  serviceBindings?: NonNullable<WorkerOptions['serviceBindings']>
}

export interface Workerd {
  url: string
  /** URL of one of `options.isolates`. */
  urlOf(isolate: string): Promise<string>
  /** A session as its Durable Object holds it, or null. */
  readSession(id: string): Promise<Session | null>
  /**
   * Tells an end to the one object it names (the session's, or its `sid` or `sub` index object),
   * as the Worker's session-end bus publishes it; every isolate's live connections listening
   * there hear it.
   */
  announce(end: SessionEnd): Promise<void>
  /** How many live connections listen at the session's object now. */
  listening(id: string): Promise<number>
  /** The first Worker's bindings, usable from Node (Durable Object namespaces by RPC). */
  bindings(): Promise<Record<string, unknown>>
  /** What the Worker logged (console and runtime), one line each, newest last. */
  logs: string[]
  close(): Promise<void>
}

const MAIN = 'bff'

// Every Worker's lines in this test file, in order, for the report of a failed test (setup.ts).
const recent: string[] = []

/** The last `count` lines any Worker of this test file logged. */
export function recentLogs(count: number): string[] {
  return recent.slice(-count)
}

/** The bundle global-setup.ts built for this vitest run. */
export async function workerBuild(): Promise<WorkerBuild> {
  const { inject } = await import('vitest')
  const build = inject('workerBuild')
  if (!build)
    throw new Error('no Worker build: run vitest with test/adapters/workers/global-setup.ts')
  return build
}

export async function startWorkerd(options: WorkerdOptions): Promise<Workerd> {
  const build = options.build ?? (await workerBuild())
  const logs: string[] = []
  const bindings: Record<string, string | number | boolean | object> = { ...build.bindings }
  for (const [name, value] of Object.entries(options.env)) {
    if (value === undefined) delete bindings[name]
    else bindings[name] = value
  }
  const clock = options.clockOffsetMs
  const worker = (name: string, first: boolean): WorkerOptions => ({
    name,
    modules: true,
    scriptPath: build.scriptPath,
    compatibilityDate: build.compatibilityDate,
    compatibilityFlags: build.compatibilityFlags,
    bindings,
    // The first Worker hosts the objects; the others bind the same namespaces by script name.
    durableObjects: Object.fromEntries(
      Object.entries(build.durableObjects).map(([binding, designator]) => [
        binding,
        first ? designator : { ...designator, scriptName: MAIN },
      ])
    ),
    serviceBindings: {
      ...options.serviceBindings,
      ...(clock ? { BFF_TEST_CLOCK: async () => new Response(String(clock())) } : {}),
    },
    unsafeDirectSockets: first ? undefined : [{ host: '127.0.0.1', port: 0 }],
    ...(options.assets && build.assets ? { assets: build.assets as WorkerOptions['assets'] } : {}),
  })

  const mf = new Miniflare({
    // A placeholder Request.cf instead of fetching Cloudflare's: no network in tests.
    cf: false,
    host: '127.0.0.1',
    port: options.port,
    workers: [worker(MAIN, true), ...(options.isolates ?? []).map((name) => worker(name, false))],
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      for (const stream of [stdout, stderr]) {
        let partial = ''
        stream.on('data', (chunk: Buffer) => {
          if (process.env.BFF_TEST_WORKERD_LOG) process.stderr.write(chunk)
          const lines = (partial + chunk.toString()).split('\n')
          partial = lines.pop()!
          logs.push(...lines.filter(Boolean))
          if (logs.length > 2000) logs.splice(0, 1000)
          recent.push(...lines.filter(Boolean))
          if (recent.length > 2000) recent.splice(0, 1000)
        })
      }
    },
  })
  const url = (await mf.ready).origin

  return {
    url,
    async urlOf(isolate) {
      return (await mf.unsafeGetDirectURL(isolate)).origin
    },
    async readSession(id) {
      const namespace = await mf.getDurableObjectNamespace('BFF_SESSIONS', MAIN)
      const stub = namespace.get(namespace.idFromName(id)) as unknown as {
        read(): Promise<Session | null>
      }
      return stub.read()
    },
    async announce(end) {
      const [binding, name] =
        'id' in end
          ? ['BFF_SESSIONS', end.id]
          : ['BFF_SESSION_INDEX', 'sid' in end ? `sid:${end.sid}` : `sub:${end.sub}`]
      const namespace = await mf.getDurableObjectNamespace(binding, MAIN)
      const stub = namespace.get(namespace.idFromName(name)) as unknown as {
        announce(end: SessionEnd): Promise<void>
        /** How many live connections listen at the session's object now. */
        listening(id: string): Promise<number>
      }
      await stub.announce(end)
    },
    async listening(id) {
      const namespace = await mf.getDurableObjectNamespace('BFF_SESSIONS', MAIN)
      const stub = namespace.get(namespace.idFromName(id)) as unknown as {
        listening(): Promise<number>
      }
      return stub.listening()
    },
    bindings: () => mf.getBindings(MAIN),
    logs,
    close: () => mf.dispose(),
  }
}
