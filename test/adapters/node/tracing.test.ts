/**
 * The Node entry's OTLP export: which settings turn it on, what it refuses, that nothing of the
 * SDK is loaded while it is off, and that spans reach a receiver with the parents the core gives.
 */
import { createRequire } from 'node:module'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError } from '../../../src/core/config/env.ts'
import { nodeTracing, tracesEndpoint } from '../../../src/adapters/node/tracing.ts'
import { startOtlpReceiver, type OtlpReceiver } from '../../helpers/otlp-receiver.ts'

const require = createRequire(import.meta.url)
const sdkModulesLoaded = () =>
  Object.keys(require.cache).filter((file) => file.includes('@opentelemetry')).length

// First in the file: no test before it has loaded the SDK into this process.
describe('without OTEL_EXPORTER_OTLP_ENDPOINT', () => {
  it('answers undefined and loads nothing of the SDK', async () => {
    expect(await nodeTracing({ BFF_ISSUER: 'https://idp.example' })).toBeUndefined()
    expect(await nodeTracing({ OTEL_SERVICE_NAME: 'bff' })).toBeUndefined()
    expect(sdkModulesLoaded()).toBe(0)
  })
})

describe('tracesEndpoint', () => {
  it('adds /v1/traces to the base endpoint; the traces endpoint is used as it is', () => {
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(
      'http://collector:4318/v1/traces'
    )
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toBe(
      'http://collector:4318/v1/traces'
    )
    expect(
      tracesEndpoint({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:9999/custom',
      })
    ).toBe('http://traces:9999/custom')
  })

  it('is off with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none', () => {
    const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }
    expect(tracesEndpoint({ ...on, OTEL_SDK_DISABLED: 'true' })).toBeUndefined()
    expect(tracesEndpoint({ ...on, OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined()
    expect(tracesEndpoint({ ...on, OTEL_TRACES_EXPORTER: 'console,otlp' })).toBeDefined()
    expect(tracesEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: '  ' })).toBeUndefined()
  })
})

describe('nodeTracing', () => {
  it('refuses grpc and a URL it cannot use, without echoing the URL', async () => {
    const grpc = nodeTracing({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
    })
    await expect(grpc).rejects.toThrow(ConfigError)
    await expect(grpc).rejects.toThrow(/OTEL_EXPORTER_OTLP_PROTOCOL "grpc"/)
    const bad = nodeTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:hunter2@collector' })
    await expect(bad).rejects.toThrow(/must be an http/)
    await expect(bad).rejects.not.toThrow(/hunter2/)
  })

  describe('exporting to a receiver', () => {
    let receiver: OtlpReceiver
    beforeAll(async () => {
      receiver = await startOtlpReceiver()
    })
    afterAll(() => receiver?.close())

    it('sends spans as OTLP/HTTP JSON, with the service name and the parents given', async () => {
      const tracing = (await nodeTracing({
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'unit-bff',
      }))!
      expect(sdkModulesLoaded()).toBeGreaterThan(0)
      const remote = {
        traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
        spanId: '00f067aa0ba902b7',
        flags: 1,
        remote: true,
        state: 'rojo=1',
      }
      const server = tracing.tracer.startSpan('GET', { kind: 'server', parent: remote })
      expect(server.context.traceId).toBe(remote.traceId)
      expect(server.context.spanId).not.toBe(remote.spanId)
      const client = tracing.tracer.startSpan('GET /api/', {
        kind: 'client',
        parent: server.context,
        attributes: { 'http.route': '/api/' },
      })
      client.end('upstream_timeout')
      server.updateName('GET /api/')
      server.end()
      await tracing.close()
      const spans = await receiver.waitFor((spans) => spans.length === 2)
      const [first, second] = spans
      expect(first).toMatchObject({
        name: 'GET /api/',
        kind: 3,
        parentSpanId: server.context.spanId,
        spanId: client.context.spanId,
        attributes: { 'http.route': '/api/', 'error.type': 'upstream_timeout' },
        status: { code: 2 },
        service: 'unit-bff',
      })
      expect(second).toMatchObject({ name: 'GET /api/', kind: 2, parentSpanId: remote.spanId })
    })

    it('records nothing for an unsampled parent, and keeps its flags for the children', async () => {
      receiver.spans.length = 0
      const tracing = (await nodeTracing({
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      }))!
      const parent = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7' }
      const span = tracing.tracer.startSpan('GET', {
        kind: 'server',
        parent: { ...parent, flags: 0, remote: true },
      })
      expect(span.context.flags).toBe(0)
      expect(span.context.spanId).not.toBe(parent.spanId)
      span.end()
      await tracing.close()
      expect(receiver.spans).toEqual([])
    })

    it('sends protobuf unless told http/json, as the OTLP default is', async () => {
      receiver.contentTypes.length = 0
      const tracing = (await nodeTracing({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url }))!
      tracing.tracer.startSpan('GET', { kind: 'server' }).end()
      await tracing.close()
      expect(receiver.contentTypes).toEqual(['application/x-protobuf'])
    })
  })
})
