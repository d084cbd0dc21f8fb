/**
 * Mutual TLS to upstreams on Workers: a Worker presents a client certificate only through an
 * `mtls_certificates` binding (wrangler.toml `[[mtls_certificates]]`, the certificate uploaded with
 * `wrangler mtls-certificate upload`), whose `fetch` is the global fetch plus that certificate. A
 * route's `tls.binding` names it; the calls of that route go through its `fetch`, every other
 * route's through the global fetch.
 */
import type { ApiRoute } from '../../core/config/options.ts'
import { forward, type Forwarder } from '../../core/proxy/forward.ts'
import { upstreamTlsProblems } from '../../core/proxy/upstream-tls.ts'

interface Fetcher {
  fetch: typeof fetch
}

export function fetcherOf(env: Record<string, unknown>, name: string): Fetcher | undefined {
  const binding = env[name] as Partial<Fetcher> | undefined
  return typeof binding?.fetch === 'function' ? (binding as Fetcher) : undefined
}

/**
 * The routes' `tls` on Workers: `binding` only, and bound. One line per problem, naming the route;
 * each starts with BFF_CONFIG, where a Worker's routes with `tls` come from (BFF_API cannot say it).
 */
export function mtlsProblems(env: Record<string, unknown>, routes: readonly ApiRoute[]): string[] {
  const problems = upstreamTlsProblems(routes, 'binding')
  for (const { prefix, tls } of routes) {
    if (tls?.binding !== undefined && !fetcherOf(env, tls.binding)) {
      problems.push(
        `route "${prefix}": "tls.binding" "${tls.binding}" is not bound: add an ` +
          `[[mtls_certificates]] binding of that name to wrangler.toml`
      )
    }
  }
  return problems.map((problem) => `BFF_CONFIG ${problem}`)
}

/** `forward` over the global fetch, or over the route's mtls_certificates binding's. */
export function workersForward(): Forwarder {
  const send: Forwarder = (c, target, call) => {
    const name = call.route?.tls?.binding
    const fetcher =
      name === undefined ? undefined : fetcherOf(c.env as Record<string, unknown>, name)
    // Checked at start-up (mtlsProblems); never a call without the certificate the route asks for.
    if (name !== undefined && !fetcher) throw new Error(`mtls_certificates binding ${name} missing`)
    const via: typeof fetch = fetcher
      ? (input, init) => fetcher.fetch(input, init)
      : (input, init) => fetch(input, init)
    // workerd's fetch hands compressed answers over as they came (`encodeResponseBody: "manual"`):
    // a coding the browser accepts passes untouched.
    return forward(c.req.raw, target, { ...call, fetch: via, encoded: true })
  }
  return Object.assign(send, { tls: 'binding' as const })
}
