/**
 * Workers Analytics Engine for request metrics: a Worker's counters live in one isolate, and
 * Cloudflare runs many, started and stopped at will, so `/bff/metrics` there shows one isolate's
 * share only. With an Analytics Engine dataset bound as `BFF_ANALYTICS`, every request also writes
 * one data point, which Cloudflare adds up across isolates and lets you query with SQL:
 *   index1 = route; blob1 = route, blob2 = method, blob3 = status; double1 = seconds, double2 = status.
 * The same bounded labels as the Prometheus metrics: never a raw path, a user or a token.
 */
import type { AnalyticsEngineDataset } from '@cloudflare/workers-types/latest'
import type { MetricsHooks } from '../../core/observe/bff-metrics.ts'

/** The hook writing each request's point, or undefined without a `BFF_ANALYTICS` dataset. */
export function analyticsEngineHooks(env: Record<string, unknown>): MetricsHooks | undefined {
  const dataset = env.BFF_ANALYTICS as Partial<AnalyticsEngineDataset> | undefined
  if (typeof dataset?.writeDataPoint !== 'function') return undefined
  const write = dataset.writeDataPoint.bind(dataset)
  return {
    request: ({ route, method, status, seconds }) =>
      write({
        indexes: [route],
        blobs: [route, method, String(status)],
        doubles: [seconds, status],
      }),
  }
}
