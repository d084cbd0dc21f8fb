/**
 * An OTLP/HTTP trace receiver on loopback, as a collector would be: it takes JSON-encoded
 * `ExportTraceServiceRequest`s (OTEL_EXPORTER_OTLP_PROTOCOL=http/json) at /v1/traces, keeps every
 * body as it arrived (for scans) and the spans decoded. Protobuf bodies are accepted, not decoded.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface ReceivedSpan {
  traceId: string
  spanId: string
  /** Empty for a root span. */
  parentSpanId: string
  name: string
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number
  attributes: Record<string, string | number | boolean>
  status?: { code?: number }
  /** The resource's `service.name`. */
  service?: string
}

export interface OtlpReceiver {
  /** The base URL, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string
  /** Every request body as received. */
  bodies: string[]
  /** The Content-Type of each request, in order. */
  contentTypes: string[]
  spans: ReceivedSpan[]
  /** Resolves once `predicate` holds for the spans received (polling), or rejects after `ms`. */
  waitFor(predicate: (spans: ReceivedSpan[]) => boolean, ms?: number): Promise<ReceivedSpan[]>
  close(): Promise<void>
}

interface AnyValue {
  stringValue?: string
  intValue?: number | string
  boolValue?: boolean
  doubleValue?: number
}

const valueOf = (value: AnyValue) =>
  value.stringValue ??
  (value.intValue !== undefined ? Number(value.intValue) : undefined) ??
  value.boolValue ??
  value.doubleValue ??
  ''

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const bodies: string[] = []
  const contentTypes: string[] = []
  const spans: ReceivedSpan[] = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      bodies.push(body)
      contentTypes.push(req.headers['content-type'] ?? '')
      if (req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      // Protobuf is taken (the OTLP default) but not decoded: its bodies are kept for scans.
      if (!req.headers['content-type']?.includes('json')) {
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
        return
      }
      const request = JSON.parse(body) as {
        resourceSpans?: Array<{
          resource?: { attributes?: Array<{ key: string; value: AnyValue }> }
          scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }>
        }>
      }
      for (const resource of request.resourceSpans ?? []) {
        const service = resource.resource?.attributes?.find((a) => a.key === 'service.name')
        for (const scope of resource.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            const attributes = Object.fromEntries(
              ((span.attributes ?? []) as Array<{ key: string; value: AnyValue }>).map((a) => [
                a.key,
                valueOf(a.value),
              ])
            )
            spans.push({
              traceId: span.traceId as string,
              spanId: span.spanId as string,
              parentSpanId: (span.parentSpanId as string | undefined) ?? '',
              name: span.name as string,
              kind: span.kind as number,
              attributes,
              status: span.status as { code?: number } | undefined,
              service: service ? String(valueOf(service.value)) : undefined,
            })
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    bodies,
    contentTypes,
    spans,
    async waitFor(predicate, ms = 10_000) {
      const until = Date.now() + ms
      while (!predicate(spans)) {
        if (Date.now() > until) throw new Error(`spans not received in ${ms} ms`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      return spans
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
