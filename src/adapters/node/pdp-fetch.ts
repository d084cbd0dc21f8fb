/**
 * The calls to the routes' policy decision points (`authorize`) on Node, through an undici Agent's
 * request API rather than Node's fetch. Without a decision cache the PDP is asked on every proxied
 * call, and fetch's layers (Request, Headers, web streams) cost several times the small POST
 * itself: see docs/performance.md, "The policy decision point". A fetch in shape, for the core's
 * `pdpFetch`: the answer is read here, up to one byte past what the core accepts, so a huge
 * answer is never held.
 */
import { Agent, type Dispatcher } from 'undici'
import { MAX_ANSWER_BYTES } from '../../core/policy/authorize.ts'

// Statuses whose Response may not have a body.
const NULL_BODY_STATUS = new Set([101, 204, 205, 304])

export interface NodePdpFetch {
  fetch: typeof fetch
  close(): Promise<void>
}

/** A fetch for PDP calls over an Agent of its own; `close()` ends its connections. */
export function nodePdpFetch(): NodePdpFetch {
  const dispatcher = new Agent()
  const pdpFetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input))
    const { statusCode, body } = await dispatcher.request({
      origin: url.origin,
      path: url.pathname + url.search,
      method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
      headers: Object.fromEntries(new Headers(init.headers)),
      body: typeof init.body === 'string' ? init.body : null,
      signal: init.signal ?? undefined,
    })
    const chunks: Buffer[] = []
    let bytes = 0
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk)
      bytes += chunk.length
      if (bytes > MAX_ANSWER_BYTES) {
        body.destroy()
        break
      }
    }
    if (NULL_BODY_STATUS.has(statusCode)) return new Response(null, { status: statusCode })
    return new Response(Buffer.concat(chunks) as Uint8Array as BodyInit, { status: statusCode })
  }
  return {
    fetch: pdpFetch as typeof fetch,
    close: () => dispatcher.destroy(),
  }
}
