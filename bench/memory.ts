/**
 * Bytes per session in the `memory` store: fills a store with BENCH_MEMORY_SESSIONS sessions shaped
 * like BENCH_SESSION (JSON of a real session from a login through the IdP), each with its own random
 * ids and tokens of the same lengths, and compares the heap after full GCs. Needs --expose-gc.
 * Prints one JSON line.
 */
import { memoryStore } from '../src/core/session/stores/memory.ts'
import type { Session } from '../src/core/session/types.ts'
import { cloneSession } from './clone.ts'

const count = Number(process.env.BENCH_MEMORY_SESSIONS ?? 100_000)
const template = JSON.parse(process.env.BENCH_SESSION ?? 'null') as Session | null
if (!template) throw new Error('BENCH_SESSION must hold a session as JSON')
const gc = (globalThis as { gc?: () => void }).gc
if (!gc) throw new Error('run with --expose-gc')

function heapAfterGc(): number {
  gc!()
  gc!()
  return process.memoryUsage().heapUsed
}

const nowSeconds = Math.floor(Date.now() / 1000)
const store = memoryStore({ maxSessions: count })
const before = heapAfterGc()
for (let i = 0; i < count; i++) {
  await store.set(cloneSession(template, i, nowSeconds))
}
const after = heapAfterGc()
const sample = await store.listBySub('user-0')
if (sample.length !== 1) throw new Error('the store lost sessions while filling')
console.log(
  JSON.stringify({
    sessions: count,
    heapBytes: after - before,
    bytesPerSession: Math.round((after - before) / count),
    sessionJsonBytes: JSON.stringify(template).length,
  })
)
