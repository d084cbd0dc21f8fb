/**
 * Node's process metrics for `/bff/metrics`: prom-client's default metrics (CPU, memory, event
 * loop lag, GC, handles) in a registry of their own, appended to the core's text. prom-client is
 * an optional dependency, loaded only when metrics are on; without it the BFF's own metrics are
 * served alone and the log says why.
 */
import type { MetricsHooks } from '../../core/observe/bff-metrics.ts'
import type { Logger } from '../../core/observe/log.ts'

export async function nodeProcessMetrics(log: Logger): Promise<MetricsHooks | undefined> {
  let prom: typeof import('prom-client')
  try {
    prom = await import('prom-client')
  } catch {
    log('warn', 'metrics.process_unavailable', { reason: 'prom-client is not installed' })
    return undefined
  }
  // Its own registry, not prom-client's global one: a host app's metrics stay its own, and two
  // servers in one process (tests) do not register the same names twice.
  const registry = new prom.Registry()
  prom.collectDefaultMetrics({ register: registry })
  return {
    async extra() {
      const text = await registry.metrics()
      return text.endsWith('\n') ? text : `${text}\n`
    },
  }
}
