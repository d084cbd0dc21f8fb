/**
 * The trace context of an IdP call made for a request, from the call to its HTTP request: the
 * IdP gets a `traceparent` (and the trace's `tracestate`) naming the BFF's span for that work.
 *
 * openid-client takes its fetch from the `Configuration`, which every request shares, and has no
 * per-call fetch or headers; what it does pass from each call to its request is the call's form
 * parameters. So the context rides in two parameters of the call (`traceParameters`), and the
 * configuration's fetch (`traceFetch`) moves them into headers before anything is sent: nothing
 * is shared between concurrent calls, and openid-client's own retries (a DPoP nonce) send the same
 * parameters, hence the same parent. Calls without parameters (userinfo, the JWKS) carry none.
 */
import type * as client from 'openid-client'
import { ownContext, traceHeaders, type TraceContext } from '../observe/trace.ts'

const PREFIX = 'bff-trace-'
const HEADERS = ['traceparent', 'tracestate'] as const

/**
 * The parameters that make the call a child of `trace` (a span of the BFF, or the request's
 * incoming context, of which a child id is drawn): none without it.
 */
export function traceParameters(trace: TraceContext | undefined): Record<string, string> {
  if (!trace) return {}
  const parameters: Record<string, string> = {}
  for (const [name, value] of Object.entries(traceHeaders(ownContext(trace)))) {
    if (value) parameters[PREFIX + name] = value
  }
  return parameters
}

/** `fetchImpl`, sending a form's trace parameters as headers, never as parameters. */
export function traceFetch(fetchImpl: client.CustomFetch): client.CustomFetch {
  return (url, init) => {
    const { body } = init
    if (!(body instanceof URLSearchParams) || !body.has(PREFIX + HEADERS[0])) {
      return fetchImpl(url, init)
    }
    // The body is openid-client's copy for this one request: its retries build another.
    const headers = { ...init.headers }
    for (const name of HEADERS) {
      const value = body.get(PREFIX + name)
      body.delete(PREFIX + name)
      if (value) headers[name] = value
    }
    return fetchImpl(url, { ...init, headers })
  }
}
