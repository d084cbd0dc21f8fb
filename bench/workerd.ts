/**
 * The bench's side of workerd (bench/workers-cold.ts): a Miniflare for one target (one workerd
 * process, so a fresh isolate), the process Miniflare spawned, and the CPU time of its threads
 * from /proc (Linux only).
 */
import { readFileSync, readdirSync } from 'node:fs'
import type { Readable } from 'node:stream'
import { Miniflare, type WorkerOptions } from 'miniflare'
import type { WorkersTargetKey } from './workers-cold.ts'

/** Nanoseconds on CPU of one thread (schedstat's first field). */
export function threadCpuNs(pid: number, tid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
  } catch {
    return 0
  }
}

export function processCpuNs(pid: number): number {
  let sum = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) sum += threadCpuNs(pid, Number(tid))
  return sum
}

/** The workerd processes this process started (Miniflare spawns them as its children). */
function workerdPids(): number[] {
  const pids: number[] = []
  for (const tid of readdirSync(`/proc/${process.pid}/task`)) {
    let children = ''
    try {
      children = readFileSync(`/proc/${process.pid}/task/${tid}/children`, 'utf8')
    } catch {
      continue
    }
    for (const pid of children.split(' ').filter(Boolean).map(Number)) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'workerd') pids.push(pid)
      } catch {
        // gone meanwhile
      }
    }
  }
  return pids
}

/** How to start one target's workerd, and the session it calls with. */
export interface Setup {
  key: WorkersTargetKey
  port: number
  options: WorkerOptions
  /** Durable Object storage kept from one workerd to the next (objects in the same workerd). */
  persist?: string
  /** The dev registry through which the objects of another workerd are reached. */
  registry?: string
  headers: Record<string, string>
  /** Another session's, for its first call on the isolate once warm. */
  otherHeaders: Record<string, string>
}

/** A Miniflare (one workerd) for `setup`, and the workerd's pid. */
export async function start(
  setup: Setup,
  /** A port for workerd's inspector (bench/workers-profile.ts), reached at ws://…/<worker name>. */
  inspectorPort?: number
): Promise<{ mf: Miniflare; pid: number; url: string }> {
  const before = new Set(workerdPids())
  const mf = new Miniflare({
    cf: false,
    host: '127.0.0.1',
    port: setup.port,
    workers: [{ ...setup.options, ...(inspectorPort ? { unsafeInspectorProxy: true } : {}) }],
    ...(inspectorPort ? { inspectorPort } : {}),
    ...(setup.persist ? { durableObjectsPersist: setup.persist } : {}),
    ...(setup.registry ? { unsafeDevRegistryPath: setup.registry } : {}),
    // The runtime's own lines would interleave with the bench's report.
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      stdout.resume()
      stderr.resume()
    },
  })
  const url = (await mf.ready).origin
  const pid = workerdPids().find((p) => !before.has(p))
  if (!pid) {
    await mf.dispose()
    throw new Error('no new workerd process among this process’s children')
  }
  return { mf, pid, url }
}

/** Why this machine cannot measure workerd's threads, or undefined when it can. */
export function workersUnmeasurable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux (no /proc/<pid>/task/<tid>/schedstat)'
  try {
    readFileSync(`/proc/${process.pid}/task/${process.pid}/schedstat`)
    readFileSync(`/proc/${process.pid}/task/${process.pid}/children`)
  } catch {
    return 'no schedstat or children in /proc'
  }
  return undefined
}
