/**
 * The BFF under test: `startNode` exactly as `npm start` runs it with BFF_ISSUER set, from the
 * settings in BENCH_BFF_ENV (JSON), with NODE_ENV=production set by the bench. Two additions for the
 * bench, all outside the request path: the clock can be moved forward (the refresh storm needs an
 * expired access token without waiting), log events are counted instead of printed, and sessions
 * of other users can be minted from a login's cookie (mint.ts). The `memory` store is made here,
 * as the core would make it but with room for the many-sessions bench's users.
 */
import { writeHeapSnapshot } from 'node:v8'
import type { Logger } from '../src/core/observe/log.ts'
import { startNode } from '../src/adapters/node/start.ts'
import { memoryStore } from '../src/core/session/stores/memory.ts'
import { serveParent } from './child.ts'
import { sessionMinter, type MintRequest } from './mint.ts'

const env = JSON.parse(process.env.BENCH_BFF_ENV ?? '{}') as Record<string, string>
const logs: Record<string, number> = {}
// The first few reasons and paths of each warning or error, so a soak that sees 503s says why.
const reasons: Record<string, string[]> = {}
const log: Logger = (level, event, fields) => {
  const key = `${level}:${event}${fields?.code ? `:${fields.code}` : ''}`
  logs[key] = (logs[key] ?? 0) + 1
  if (level !== 'warn' && level !== 'error') return
  const kept = (reasons[key] ??= [])
  if (kept.length < 5) kept.push(`${fields?.path ?? ''} ${fields?.reason ?? ''}`.trim())
}
let offsetMs = 0
const now = () => Date.now() + offsetMs

// BENCH_PDP_FETCH=fetch: the policy decision points asked through Node's fetch instead of the
// Node entry's undici transport (bench/pdp.ts compares the two).
const pdpFetch: typeof fetch | undefined =
  process.env.BENCH_PDP_FETCH === 'fetch' ? (input, init) => fetch(input, init) : undefined
const memory =
  env.BFF_SESSION_STORE === 'memory' ? memoryStore({ now, maxSessions: 250_000 }) : undefined
const server = await startNode(env, {
  deps: { log, now, ...(pdpFetch ? { pdpFetch } : {}), ...(memory ? { store: memory } : {}) },
})
const minter = sessionMinter(env, memory)
serveParent(
  server.url,
  {
    advance: ({ seconds }) => {
      offsetMs += Number(seconds) * 1000
    },
    logs: () => logs,
    reasons: () => reasons,
    mint: (args) => minter.mint(args as unknown as MintRequest),
    // With --expose-gc: the memory after full collections (bench/websocket.ts).
    memory: () => {
      const gc = (globalThis as { gc?: () => void }).gc
      gc?.()
      gc?.()
      return process.memoryUsage()
    },
    // A V8 heap snapshot into `file` (bench/soak.ts with SOAK_HEAP_SNAPSHOTS: what grew).
    heapSnapshot: ({ file }) => writeHeapSnapshot(String(file)),
  },
  async () => {
    await minter.close()
    await server.close()
  }
)
