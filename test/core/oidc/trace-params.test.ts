/**
 * An IdP call's trace context rides from the call to its request in two form parameters, which
 * the configuration's fetch turns into headers (trace-params.ts). The whole path through
 * openid-client and the real IdP is tested in test/integration/tracing.test.ts.
 */
import type * as client from 'openid-client'
import { describe, expect, it } from 'vitest'
import { parseTraceparent, type TraceContext } from '../../../src/core/observe/trace.ts'
import { traceFetch, traceParameters } from '../../../src/core/oidc/trace-params.ts'

const TRACE = '0af7651916cd43dd8448eb211c80319c'
const SPAN = 'b7ad6b7169203331'

/** What `traceFetch` hands on, for a form body of `parameters`. */
async function sent(parameters: Record<string, string>) {
  let got: { headers: Record<string, string>; body: URLSearchParams } | undefined
  const fetchImpl: client.CustomFetch = async (_url, init) => {
    got = { headers: init.headers, body: init.body as URLSearchParams }
    return new Response('{}')
  }
  await traceFetch(fetchImpl)('https://idp.test/token', {
    method: 'POST',
    headers: { accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'refresh_token', ...parameters }),
    redirect: 'manual',
  })
  return got!
}

describe('traceParameters and traceFetch', () => {
  it('a span of the BFF is the parent as it is, with the trace’s tracestate', async () => {
    const own: TraceContext = { traceId: TRACE, spanId: SPAN, flags: 1, state: 'a=1' }
    const { headers, body } = await sent(traceParameters(own))
    expect(headers).toEqual({
      accept: 'application/json',
      traceparent: `00-${TRACE}-${SPAN}-01`,
      tracestate: 'a=1',
    })
    expect([...body.keys()]).toEqual(['grant_type'])
  })

  it('a context read from a request is never passed on: a child id is drawn', async () => {
    const remote: TraceContext = { traceId: TRACE, spanId: SPAN, flags: 0, remote: true }
    const { headers } = await sent(traceParameters(remote))
    const parent = parseTraceparent(headers.traceparent)!
    expect(parent).toMatchObject({ traceId: TRACE, flags: 0 })
    expect(parent.spanId).not.toBe(SPAN)
    expect(headers.tracestate).toBeUndefined()
  })

  it('without a context, no parameters and no headers', async () => {
    expect(traceParameters(undefined)).toEqual({})
    const { headers, body } = await sent({})
    expect(headers).toEqual({ accept: 'application/json' })
    expect(body.toString()).toBe('grant_type=refresh_token')
  })
})
