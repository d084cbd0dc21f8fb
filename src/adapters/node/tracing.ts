/**
 * OTLP trace export on Node, with the OpenTelemetry SDK, when the standard settings ask for it:
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (plus
 * `/v1/traces`). Without either, `nodeTracing` answers undefined having loaded nothing: the SDK
 * and exporters (optional dependencies) are imported only when export is on, so a BFF that does
 * not trace pays for none of it. `otelTracer` adapts any OpenTelemetry tracer to the core's
 * `Tracer`, for a host app that runs its own SDK.
 */
import type { Tracer as OtelTracer } from '@opentelemetry/api'
import { ConfigError, type Env } from '../../core/config/env.ts'
import type { Span, TraceContext, Tracer } from '../../core/observe/trace.ts'

export interface NodeTracing {
  tracer: Tracer
  /** Sends the spans still queued and stops the exporter. */
  close(): Promise<void>
}

/** The OTLP/HTTP endpoint for traces the standard settings name, or undefined when none. */
export function tracesEndpoint(env: Env): string | undefined {
  const get = (name: string) => env[name]?.trim() || undefined
  if (get('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined
  // OTEL_TRACES_EXPORTER lists exporters; `none` (or any list without `otlp`) turns export off.
  const exporters = get('OTEL_TRACES_EXPORTER')
  if (exporters && !exporters.split(',').some((name) => name.trim() === 'otlp')) return undefined
  const traces = get('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')
  if (traces) return traces
  const base = get('OTEL_EXPORTER_OTLP_ENDPOINT')
  return base ? `${base.replace(/\/+$/, '')}/v1/traces` : undefined
}

/**
 * The Node server's tracer from the standard `OTEL_*` settings, or undefined when export is off.
 * Protocol `http/protobuf` (the default) or `http/json`; `grpc` is refused, naming the setting.
 * @throws ConfigError for a setting it cannot honour, or when the SDK is not installed.
 */
export async function nodeTracing(env: Env): Promise<NodeTracing | undefined> {
  const url = tracesEndpoint(env)
  if (!url) return undefined
  const problems: string[] = []
  try {
    const parsed = new URL(url)
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error()
  } catch {
    // The value may carry credentials: name the problem, never echo it.
    problems.push('OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT must be an http:// or https:// URL')
  }
  const protocol = (
    env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ??
    env.OTEL_EXPORTER_OTLP_PROTOCOL ??
    'http/protobuf'
  ).trim()
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    problems.push(
      `OTEL_EXPORTER_OTLP_PROTOCOL "${protocol}" is not supported: use http/protobuf or http/json`
    )
  }
  const delay = env.OTEL_BSP_SCHEDULE_DELAY?.trim()
  const scheduledDelayMillis = delay ? Number(delay) : undefined
  if (scheduledDelayMillis !== undefined && !(scheduledDelayMillis >= 0)) {
    problems.push('OTEL_BSP_SCHEDULE_DELAY must be a number of milliseconds')
  }
  if (problems.length) throw new ConfigError(problems)

  let sdk: Awaited<ReturnType<typeof loadSdk>>
  try {
    sdk = await loadSdk(protocol === 'http/json')
  } catch {
    throw new ConfigError([
      'OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed: npm install @opentelemetry/api @opentelemetry/sdk-trace-base @opentelemetry/resources @opentelemetry/exporter-trace-otlp-proto (or -http for http/json)',
    ])
  }
  const exporter = new sdk.OTLPTraceExporter({
    url,
    headers: otlpHeaders(
      env.OTEL_EXPORTER_OTLP_TRACES_HEADERS ?? env.OTEL_EXPORTER_OTLP_HEADERS ?? ''
    ),
  })
  const provider = new sdk.BasicTracerProvider({
    resource: sdk.resourceFromAttributes({
      'service.name': env.OTEL_SERVICE_NAME?.trim() || 'bff-session-broker',
    }),
    spanProcessors: [
      new sdk.BatchSpanProcessor(
        exporter,
        scheduledDelayMillis !== undefined ? { scheduledDelayMillis } : {}
      ),
    ],
  })
  return {
    tracer: otelTracer(provider.getTracer('bff-session-broker'), sdk.api),
    close: () => provider.shutdown(),
  }
}

async function loadSdk(json: boolean) {
  const [api, base, resources, exporter] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
    json
      ? import('@opentelemetry/exporter-trace-otlp-http')
      : import('@opentelemetry/exporter-trace-otlp-proto'),
  ])
  return {
    api,
    BasicTracerProvider: base.BasicTracerProvider,
    BatchSpanProcessor: base.BatchSpanProcessor,
    resourceFromAttributes: resources.resourceFromAttributes,
    OTLPTraceExporter: exporter.OTLPTraceExporter,
  }
}

/** `OTEL_EXPORTER_OTLP_HEADERS`: `key=value` pairs, comma-separated, values percent-encoded. */
function otlpHeaders(value: string): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const pair of value.split(',')) {
    const at = pair.indexOf('=')
    if (at <= 0) continue
    try {
      headers[pair.slice(0, at).trim()] = decodeURIComponent(pair.slice(at + 1).trim())
    } catch {
      // A malformed escape: the pair is skipped, as the SDK does.
    }
  }
  return headers
}

type OtelApi = typeof import('@opentelemetry/api')

const KINDS = { server: 1, client: 2, internal: 0 } as const // api.SpanKind's values

/**
 * The core's `Tracer` over an OpenTelemetry tracer. Parents are passed explicitly (no context
 * manager needed): a span's parent is the context the core hands over, remote for the request's
 * incoming `traceparent`. Pass `api` when the tracer comes from your own SDK set-up.
 * @example createBff(options, { tracer: otelTracer(trace.getTracer('bff'), api) })
 */
export function otelTracer(tracer: OtelTracer, api: OtelApi): Tracer {
  const { ROOT_CONTEXT, SpanStatusCode, trace } = api
  return {
    startSpan(name, { kind, parent, attributes }): Span {
      const context = parent
        ? trace.setSpanContext(ROOT_CONTEXT, {
            traceId: parent.traceId,
            spanId: parent.spanId,
            traceFlags: parent.flags,
            isRemote: parent.remote === true,
            ...(parent.state ? { traceState: api.createTraceState(parent.state) } : {}),
          })
        : ROOT_CONTEXT
      const span = tracer.startSpan(name, { kind: KINDS[kind], attributes }, context)
      const ids = span.spanContext()
      const own: TraceContext = { traceId: ids.traceId, spanId: ids.spanId, flags: ids.traceFlags }
      return {
        context: own,
        setAttributes: (more) => void span.setAttributes(more),
        updateName: (newName) => void span.updateName(newName),
        end(errorType) {
          if (errorType) {
            span.setAttribute('error.type', errorType)
            span.setStatus({ code: SpanStatusCode.ERROR })
          }
          span.end()
        },
      }
    },
  }
}
