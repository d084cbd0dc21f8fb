/**
 * W3C Trace Context (www.w3.org/TR/trace-context): reading a request's `traceparent` and
 * `tracestate`, and writing the `traceparent` of a child for the calls the BFF makes. Web APIs
 * only, so it runs the same on Node and Workers; this is all the core does for tracing when no
 * `Tracer` is configured. Recording spans is the `Tracer`'s job (observe/spans.ts; on Node
 * src/adapters/node/tracing.ts over the OpenTelemetry SDK).
 */
import { BffError } from '../errors.ts'

/** A span's identity as `traceparent` carries it, with the trace's `tracestate`. */
export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  traceId: string
  /** 16 lower-case hex digits, not all zero. */
  spanId: string
  /** The trace flags byte; bit 0 is `sampled`. */
  flags: number
  /** The `tracestate` that came with the trace, passed on as it came. */
  state?: string
  /** The span belongs to the caller (read from a request), not to this process. */
  remote?: boolean
}

export type SpanAttributes = Record<string, string | number | boolean>

/** A span being recorded. */
export interface Span {
  /** This span's ids: a child's `traceparent` names `context.spanId` as its parent. */
  readonly context: TraceContext
  setAttributes(attributes: SpanAttributes): void
  updateName(name: string): void
  /** Ends the span; `errorType` (a short code, never a message) marks it failed. */
  end(errorType?: string): void
}

/**
 * What records the BFF's spans: `createBff`'s `deps.tracer`. The Node entry builds one over the
 * OpenTelemetry SDK when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`otelTracer` in `./node` adapts
 * any OpenTelemetry tracer). Without one, no span is recorded and upstream calls still carry a
 * child `traceparent`.
 */
export interface Tracer {
  startSpan(
    name: string,
    options: {
      kind: 'server' | 'client' | 'internal'
      /** The parent: a request's incoming context, or a span of this process. None: a new trace. */
      parent?: TraceContext
      attributes?: SpanAttributes
    }
  ): Span
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)
// tracestate: at most 32 list members (3.3.1.1); 512 characters is what every vendor must pass
// on, and longer values may be dropped whole. Printable ASCII only, as every member is.
const TRACESTATE = /^[\x20-\x7e]{0,512}$/
const MAX_STATE_MEMBERS = 32

/**
 * The parent a request names, or undefined when `traceparent` is absent or invalid (then the
 * `tracestate` is ignored too, as the specification requires). Version 00 must be exactly 55
 * characters; a later version may add fields after a `-`; version ff is invalid; upper-case hex
 * and all-zero ids are invalid.
 */
export function parseTraceparent(
  traceparent: string | null | undefined,
  tracestate?: string | null
): TraceContext | undefined {
  if (!traceparent || traceparent.length < 55 || traceparent.length > 512) return undefined
  const value = traceparent.trim()
  const match = TRACEPARENT.exec(value)
  if (!match) return undefined
  const [, version, traceId, spanId, flags, rest] = match
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined
  const context: TraceContext = {
    traceId: traceId!,
    spanId: spanId!,
    // A later version's flags may use bits 00 does not know: only `sampled` is carried on.
    flags: version === '00' ? parseInt(flags!, 16) : parseInt(flags!, 16) & 1,
    remote: true,
  }
  const state = validTracestate(tracestate)
  if (state) context.state = state
  return context
}

/** `tracestate` as it came, when it can be passed on; undefined when absent or malformed. */
function validTracestate(tracestate: string | null | undefined): string | undefined {
  if (!tracestate) return undefined
  const value = tracestate.trim()
  if (!value || !TRACESTATE.test(value)) return undefined
  if (value.split(',').length > MAX_STATE_MEMBERS) return undefined
  return value
}

/** `traceparent` naming `context` as the parent: version 00, its trace id, span id and flags. */
export function formatTraceparent(context: TraceContext): string {
  return `00-${context.traceId}-${context.spanId}-${(context.flags & 0xff).toString(16).padStart(2, '0')}`
}

/**
 * A new span of `parent`'s trace, not recorded: what the upstream's `traceparent` names when no
 * `Tracer` is configured. Without a parent, a new trace, marked sampled: the BFF is then the
 * trace's head and leaves recording to the services behind it, whose parent-based samplers
 * would otherwise drop every trace started here.
 */
export function childContext(parent: TraceContext | undefined): TraceContext {
  const context: TraceContext = {
    traceId: parent?.traceId ?? randomHex(16),
    spanId: randomHex(8),
    flags: parent?.flags ?? 1,
  }
  if (parent?.state) context.state = parent.state
  return context
}

/**
 * What a call of this process names as its parent for `context`: the context itself when it is a
 * span of this process, else (the caller's span, read from its request) a new child of it, so
 * that the caller's ids are never passed on as they came.
 */
export function ownContext(context: TraceContext): TraceContext {
  return context.remote ? childContext(context) : context
}

/** The headers an outgoing call carries for `context`. */
export function traceHeaders(context: TraceContext): { traceparent: string; tracestate?: string } {
  const headers: { traceparent: string; tracestate?: string } = {
    traceparent: formatTraceparent(context),
  }
  if (context.state) headers.tracestate = context.state
  return headers
}

/** `bytes` (at most 64) random bytes as lower-case hex, never all zero (an invalid id). */
export function randomHex(bytes: number): string {
  // One getRandomValues call per id cost several microseconds on Node (more than all the rest
  // of the propagation); drawn from a pool refilled 4 KiB at a time, and turned into hex once
  // per refill (a slice of one flat string, not a string built per id), an id costs next to
  // nothing. Where the runtime has Uint8Array's own toHex (workerd; not Node 20), it makes the
  // hex; else each byte's two hex digits are written as one 16-bit store and decoded at once:
  // some 6 µs, where joining 4 096 strings took over 100. On a fresh Workers isolate that loop,
  // not yet optimised, cost its first request about half a millisecond.
  if (poolAt + bytes > POOL.length) {
    crypto.getRandomValues(POOL)
    if (toHex) poolHex = toHex.call(POOL)
    else {
      for (let i = 0; i < POOL.length; i++) HEX_OUT[i] = HEX_PAIRS[POOL[i]!]!
      poolHex = ASCII.decode(HEX_OUT)
    }
    poolAt = 0
  }
  const hex = poolHex.slice(2 * poolAt, 2 * (poolAt + bytes))
  poolAt += bytes
  return NON_ZERO.test(hex) ? hex : randomHex(bytes)
}
const NON_ZERO = /[^0]/
const POOL = new Uint8Array(4096)
const toHex = (POOL as Uint8Array & { toHex?: () => string }).toHex
/** Each byte's two hex digits as the 16-bit word that holds them in memory (either byte order). */
const HEX_PAIRS = Uint16Array.from({ length: 256 }, (_, byte) => {
  const digits = new TextEncoder().encode(byte.toString(16).padStart(2, '0'))
  return new Uint16Array(digits.buffer)[0]!
})
const HEX_OUT = new Uint16Array(POOL.length)
const ASCII = new TextDecoder()
let poolHex = ''
let poolAt = POOL.length

/** A failure as a span's `error.type`: the BFF's error code, or the error's class name. */
export function errorType(err: unknown): string {
  if (err instanceof BffError) return err.code
  return err instanceof Error ? err.name : 'error'
}
