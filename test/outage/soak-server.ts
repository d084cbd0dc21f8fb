/**
 * The BFF under soak, in a process of its own so its memory is measured alone. Started by soak.ts
 * with `fork` and `--expose-gc`; takes its settings as JSON in SOAK_BFF_ENV and speaks over IPC:
 *   -> { ready: url }                       once listening
 *   <- 'memory'   -> { memory, logs }        after two full GCs: memoryUsage() and log counts
 *   <- 'stop'                               closes the server and exits
 */
import { startNode } from '../../src/adapters/node/server.ts'
import type { Logger } from '../../src/core/observe/log.ts'

const env = JSON.parse(process.env.SOAK_BFF_ENV ?? '{}') as Record<string, string>
// Counted, not printed: the soak reports how many events of each level and which error events.
const logs: Record<string, number> = {}
const log: Logger = (level, event, fields) => {
  const key = level === 'info' ? level : `${level}:${event}:${fields?.code ?? ''}`
  logs[key] = (logs[key] ?? 0) + 1
}

const server = await startNode(env, { serveStatic: false, deps: { log } })
const gc = (globalThis as { gc?: () => void }).gc

process.on('message', async (message) => {
  if (message === 'memory') {
    // Two passes: the first may only schedule finalisers whose memory the second frees.
    gc?.()
    await new Promise((resolve) => setImmediate(resolve))
    gc?.()
    process.send!({ memory: process.memoryUsage(), gc: Boolean(gc), logs })
  } else if (message === 'stop') {
    await server.close()
    process.exit(0)
  }
})
process.send!({ ready: server.url })
