/**
 * The servers under test run in child processes of their own, so the load generator (autocannon,
 * in the bench's process) never shares an event loop with them. A child speaks over IPC:
 *   -> { ready: url }              once listening
 *   <- { id, call, ...args }  ->  { id, result }   for whatever the child offers (stats, clock)
 *   <- 'stop'                      closes and exits
 */
import { fork, type ChildProcess } from 'node:child_process'
import { Session } from 'node:inspector/promises'

export interface Child {
  url: string
  call<T>(call: string, args?: Record<string, unknown>): Promise<T>
  stop(): Promise<void>
}

export interface ChildOptions {
  /** Environment of the child, on top of PATH. */
  env?: Record<string, string>
  execArgv?: string[]
  /** Give up waiting for `ready` after this long. */
  startTimeoutMs?: number
}

export async function startChild(file: string, options: ChildOptions = {}): Promise<Child> {
  // Built JavaScript runs as it is; TypeScript through tsx.
  // BENCH_NODE_ARGS (a development aid): flags for every child, e.g. `--perf-basic-prof` for perf.
  const execArgv = [
    ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
    ...(options.execArgv ?? []),
    ...(/\.m?js$/.test(file) ? [] : ['--import', 'tsx']),
  ]
  const child: ChildProcess = fork(file, [], {
    execArgv,
    env: { PATH: process.env.PATH ?? '', ...options.env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  let nextId = 0
  const pending = new Map<number, (result: unknown) => void>()
  let ready: (url: string) => void
  const readyUrl = new Promise<string>((resolve) => (ready = resolve))
  child.on('message', (message: { ready?: string; id?: number; result?: unknown }) => {
    if (message.ready) ready(message.ready)
    if (message.id !== undefined) {
      pending.get(message.id)?.(message.result)
      pending.delete(message.id)
    }
  })
  const timeoutMs = options.startTimeoutMs ?? 30_000
  const url = await Promise.race([
    readyUrl,
    exited.then((code) => {
      throw new Error(`${file} exited with ${code} before it was ready`)
    }),
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`${file} not ready after ${timeoutMs} ms`)),
        timeoutMs
      ).unref()
    ),
  ]).catch((err) => {
    child.kill('SIGKILL')
    throw err
  })

  return {
    url,
    call<T>(call: string, args: Record<string, unknown> = {}) {
      const id = nextId++
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${file}: "${call}" timed out`)), 120_000)
        pending.set(id, (result) => {
          clearTimeout(timer)
          resolve(result as T)
        })
        child.send({ id, call, ...args })
      })
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.send('stop')
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}

/**
 * What every child answers: `cpu` (its process.cpuUsage(), so the bench can tell CPU time per
 * request apart from waiting for a core), and `profileStart` / `profileStop` (a V8 CPU profile of
 * just the stretch in between, as a .cpuprofile object; bench/profile.ts), `heapStart` /
 * `heapStop` the same for allocations (a sampled heap profile, .heapprofile).
 */
const builtIn: Record<string, () => unknown> = {
  cpu: () => process.cpuUsage(),
  profileStart: async () => {
    profiler ??= new Session()
    profiler.connect()
    await profiler.post('Profiler.enable')
    await profiler.post('Profiler.setSamplingInterval', { interval: 500 })
    await profiler.post('Profiler.start')
  },
  profileStop: async () => {
    const { profile } = await profiler!.post('Profiler.stop')
    profiler!.disconnect()
    return profile
  },
  // Allocations, sampled about every 4 KiB, the collected ones included: what a call allocates.
  heapStart: async () => {
    profiler ??= new Session()
    profiler.connect()
    await profiler.post('HeapProfiler.enable')
    await profiler.post('HeapProfiler.startSampling', {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    })
  },
  heapStop: async () => {
    const { profile } = await profiler!.post('HeapProfiler.stopSampling')
    profiler!.disconnect()
    return profile
  },
}
let profiler: Session | undefined

/** The child's side: reports `url` as ready and answers calls with `builtIn` and `handlers`. */
export function serveParent(
  url: string,
  handlers: Record<string, (args: Record<string, unknown>) => unknown>,
  stop: () => Promise<void>
): void {
  process.on('message', async (message: 'stop' | { id: number; call: string }) => {
    if (message === 'stop') {
      await stop().catch(() => {})
      process.exit(0)
    }
    const handler = builtIn[message.call] ?? handlers[message.call]
    const result = handler ? await handler(message as Record<string, unknown>) : undefined
    process.send!({ id: message.id, result })
  })
  // The bench died without saying stop: do not linger.
  process.on('disconnect', () => process.exit(0))
  process.send!({ ready: url })
}
