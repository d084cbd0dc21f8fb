/**
 * docs/observability.md and docs/grafana-dashboard.json against the metrics the BFF renders: every
 * metric is documented and charted, and neither names one that does not exist.
 */
import { describe, expect, it } from 'vitest'
import { resolveOptions } from '../../src/core/config/resolve.ts'
import { createMetrics } from '../../src/core/observe/bff-metrics.ts'
import { read } from './markdown.ts'

async function rendered(): Promise<Set<string>> {
  const config = resolveOptions({
    issuer: 'https://idp.example.com',
    clientId: 'bff-client',
    clientSecret: 'client-secret-value',
    baseUrl: 'https://app.example.com',
    sessionSecret: 's'.repeat(32),
    metricsToken: 'm'.repeat(32),
  })
  const text = await createMetrics(config, 'cookie').render()
  return new Set([...text.matchAll(/^# TYPE (\w+) /gm)].map((m) => m[1]!))
}

/** `bff_*` names in a text, the histogram series' suffixes dropped. */
function namesIn(text: string): Set<string> {
  return new Set(
    [...text.matchAll(/\bbff_[a-z_]+\b/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''))
  )
}

describe('metrics in the docs', () => {
  it('docs/observability.md describes each metric, and only those', async () => {
    const metrics = await rendered()
    expect(metrics.size).toBe(10)
    const doc = read('docs/observability.md')
    expect(namesIn(doc)).toEqual(metrics)
  })

  it('docs/grafana-dashboard.json charts each metric, and only those', async () => {
    const metrics = await rendered()
    const dashboard = JSON.parse(read('docs/grafana-dashboard.json')) as {
      panels: Array<{ targets?: Array<{ expr: string }> }>
    }
    const exprs = dashboard.panels.flatMap((panel) => panel.targets ?? []).map((t) => t.expr)
    expect(exprs.length).toBeGreaterThan(10)
    expect(namesIn(exprs.join('\n'))).toEqual(metrics)
  })
})
