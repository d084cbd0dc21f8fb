/**
 * The Workers entry's Analytics Engine hook: one data point per request, with the metrics'
 * bounded labels, when `BFF_ANALYTICS` is bound to a dataset.
 */
import { describe, expect, it } from 'vitest'
import { analyticsEngineHooks } from '../../../src/adapters/workers/analytics.ts'

describe('Workers Analytics Engine hook', () => {
  it('writes one data point per request when BFF_ANALYTICS is a dataset, else is absent', () => {
    expect(analyticsEngineHooks({})).toBeUndefined()
    expect(analyticsEngineHooks({ BFF_ANALYTICS: 'not a binding' })).toBeUndefined()
    const written: unknown[] = []
    const hooks = analyticsEngineHooks({
      BFF_ANALYTICS: { writeDataPoint: (point: unknown) => written.push(point) },
    })
    hooks!.request!({ route: '/api/', method: 'GET', status: 200, seconds: 0.01 })
    expect(written).toEqual([
      { indexes: ['/api/'], blobs: ['/api/', 'GET', '200'], doubles: [0.01, 200] },
    ])
  })
})
