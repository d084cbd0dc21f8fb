/**
 * The metrics registry's text format, the BFF's label bounding and the `metricsToken` option's
 * checks.
 */
import { describe, expect, it } from 'vitest'
import { ConfigError, optionsFromEnv } from '../../../src/core/config/env.ts'
import { resolveOptions } from '../../../src/core/config/resolve.ts'
import type { BffOptions } from '../../../src/core/config/options.ts'
import { BffError } from '../../../src/core/errors.ts'
import {
  createMetrics,
  noMetrics,
  type RequestPoint,
} from '../../../src/core/observe/bff-metrics.ts'
import { Registry } from '../../../src/core/observe/metrics.ts'

const TOKEN = 'm'.repeat(32)
const options: BffOptions = {
  issuer: 'https://idp.example.com',
  clientId: 'bff-client',
  clientSecret: 'client-secret-value',
  baseUrl: 'https://app.example.com',
  sessionSecret: 's'.repeat(32),
  routes: [
    { prefix: '/api/', upstream: 'http://127.0.0.1:4000/' },
    { prefix: '/api/admin/', upstream: 'http://127.0.0.1:4001/' },
  ],
}

describe('Registry: Prometheus text format 0.0.4', () => {
  it('renders counters with and without labels, escaping label values', () => {
    const registry = new Registry()
    const plain = registry.counter('x_total', 'Plain.\nTwo lines.')
    const labelled = registry.counter('y_total', 'Labelled.', ['a', 'b'])
    plain.labels().inc()
    labelled.labels('one', 'say "hi"\\\n').inc(2)
    labelled.labels('one', 'say "hi"\\\n').inc()
    expect(registry.render()).toBe(
      [
        '# HELP x_total Plain.\\nTwo lines.',
        '# TYPE x_total counter',
        'x_total 1',
        '# HELP y_total Labelled.',
        '# TYPE y_total counter',
        'y_total{a="one",b="say \\"hi\\"\\\\\\n"} 3',
        '',
      ].join('\n')
    )
  })

  it('shows a counter without labels at 0 before anything happened', () => {
    const registry = new Registry()
    registry.counter('z_total', 'Zero.')
    expect(registry.render()).toContain('\nz_total 0\n')
  })

  it('renders histograms with cumulative buckets, le inclusive, +Inf, sum and count', () => {
    const registry = new Registry()
    const h = registry.histogram('d_seconds', 'D.', ['route'], [0.1, 1])
    const series = h.labels('/api/')
    for (const value of [0.05, 0.1, 0.5, 3]) series.observe(value)
    expect(registry.render().split('\n').slice(2)).toEqual([
      'd_seconds_bucket{route="/api/",le="0.1"} 2',
      'd_seconds_bucket{route="/api/",le="1"} 3',
      'd_seconds_bucket{route="/api/",le="+Inf"} 4',
      'd_seconds_sum{route="/api/"} 3.65',
      'd_seconds_count{route="/api/"} 4',
      '',
    ])
  })

  it('refuses bad names, labels and buckets at construction', () => {
    const registry = new Registry()
    expect(() => registry.counter('bad-name', 'x')).toThrow()
    expect(() => registry.counter('ok', 'x', ['le'])).toThrow()
    expect(() => registry.histogram('ok2', 'x', [], [1, 0.5])).toThrow()
    expect(() => registry.counter('ok3', 'x', ['a']).labels()).toThrow()
  })
})

describe('createMetrics: bounded labels', () => {
  const config = resolveOptions({ ...options, metricsToken: TOKEN })

  it('is noMetrics without a token or a request hook: nothing to do per request', () => {
    expect(createMetrics(resolveOptions(options), 'cookie')).toBe(noMetrics)
  })

  it('labels routes by configured prefix (longest first) or BFF endpoint, else other', async () => {
    const metrics = createMetrics(config, 'cookie')
    for (const path of [
      '/api/x',
      '/api/admin/y',
      '/api',
      '/apix',
      '/bff/callback/corp',
      '/bff/user',
      '/bff/nope',
      '/elsewhere',
    ]) {
      metrics.request(path, 'GET', 200, 0.001)
    }
    metrics.request('/api/x', 'BREW', 418, 0.001)
    metrics.request('/api/x', 'get', 200, 0.001)
    const text = await metrics.render()
    const routes = [...text.matchAll(/^bff_http_requests_total\{route="([^"]+)"/gm)].map(
      (m) => m[1]
    )
    expect(routes.sort()).toEqual(
      ['/api/', '/api/', '/api/', '/api/admin/', '/bff/callback', '/bff/user', 'other'].sort()
    )
    expect(text).toContain('bff_http_requests_total{route="other",method="GET",status="200"} 4')
    expect(text).toContain('bff_http_requests_total{route="/api/",method="OTHER",status="418"} 1')
    expect(text).not.toContain('nope')
    expect(text).not.toContain('corp')
  })

  it('labels unknown IdPs and prefixes as other, and counts CSRF and store errors', async () => {
    const metrics = createMetrics(config, 'redis')
    metrics.login('not-configured', 'success')
    metrics.login(undefined, 'refused')
    metrics.refresh('default', 'expired')
    metrics.policyDenial('/made-up/', 'forbidden')
    metrics.error(new BffError(403, 'csrf', 'x'))
    metrics.error(new BffError(503, 'store_unavailable', 'x'))
    metrics.error(new BffError(404, 'not_found', 'x'))
    metrics.error(new Error('plain'))
    const text = await metrics.render()
    expect(text).toContain('bff_logins_total{idp="other",result="success"} 1')
    expect(text).toContain('bff_logins_total{idp="other",result="refused"} 1')
    expect(text).toContain('bff_logins_total{idp="default",result="success"} 0')
    expect(text).toContain('bff_token_refreshes_total{idp="default",result="expired"} 1')
    expect(text).toContain('bff_policy_denials_total{route="other",reason="forbidden"} 1')
    expect(text).toContain('\nbff_csrf_rejections_total 1\n')
    expect(text).toContain('bff_session_store_errors_total{store="redis"} 1')
    expect(text).not.toContain('made-up')
    expect(text).not.toContain('not-configured')
  })

  it("appends the runtime's extra text", async () => {
    const metrics = createMetrics(config, 'cookie', { extra: async () => 'process_x 1\n' })
    expect((await metrics.render()).endsWith('\nprocess_x 1\n')).toBe(true)
  })

  it('hands each request to a request hook, bounded, also without a token', () => {
    const points: RequestPoint[] = []
    const metrics = createMetrics(resolveOptions(options), 'cookie', {
      request: (point) => points.push(point),
    })
    expect(metrics.enabled).toBe(false)
    metrics.request('/secret/path/123', 'PROPFIND', 207, 0.25)
    expect(points).toEqual([{ route: 'other', method: 'OTHER', status: 207, seconds: 0.25 }])
  })
})

describe('metricsToken / BFF_METRICS_TOKEN', () => {
  it('must be at least 32 characters when set', () => {
    expect(() => resolveOptions({ ...options, metricsToken: 'short' })).toThrow(
      '"metricsToken" must be at least 32 characters when set'
    )
    expect(() => resolveOptions({ ...options, metricsToken: 42 as never })).toThrow(ConfigError)
    const env = {
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'bff-client',
      BFF_CLIENT_SECRET: 'client-secret-value',
      BFF_BASE_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: 's'.repeat(32),
    }
    expect(() => optionsFromEnv({ ...env, BFF_METRICS_TOKEN: 'short' })).toThrow(
      /BFF_METRICS_TOKEN/
    )
    expect(optionsFromEnv({ ...env, BFF_METRICS_TOKEN: TOKEN }).metricsToken).toBe(TOKEN)
  })
})
