/**
 * A route's `tls` (mutual TLS to its upstream) against the transport that would carry the calls,
 * checked when the app is built: a route that asks for a client certificate never runs on a
 * transport that would call its upstream without one. Node's transport takes PEM texts (`cert`,
 * `key`, `ca`); a Worker can present a certificate only through an `mtls_certificates` binding.
 */
import type { ApiRoute } from '../config/options.ts'
import type { Forwarder } from './forward.ts'

/** One line per route whose `tls` the transport cannot honour, naming the route. */
export function upstreamTlsProblems(
  routes: readonly ApiRoute[],
  transport: Forwarder['tls']
): string[] {
  const problems: string[] = []
  for (const { prefix, tls } of routes) {
    if (!tls) continue
    const route = `route "${prefix}"`
    if (transport === undefined) {
      problems.push(
        `${route}: "tls" needs a transport that presents client certificates (Node: startNode or ` +
          'nodeForward() as deps.forward; Workers: the Worker entry); this one would call the ' +
          'upstream without one'
      )
    } else if (transport === 'pem') {
      if (tls.binding !== undefined) {
        problems.push(
          `${route}: "tls.binding" names a Workers mtls_certificates binding, which Node does ` +
            'not have: give "cert" and "key" (PEM) instead'
        )
      }
    } else {
      const pem = (['cert', 'key', 'ca'] as const).filter((key) => tls[key] !== undefined)
      if (tls.binding === undefined) {
        problems.push(
          `${route}: "tls" needs "binding" on Workers, the name of an mtls_certificates binding ` +
            '(upload the certificate with `wrangler mtls-certificate upload`); "cert", "key" and ' +
            '"ca" are for Node'
        )
      } else if (pem.length) {
        problems.push(
          `${route}: ${pem.map((key) => `"tls.${key}"`).join(', ')} cannot be used on Workers: ` +
            "the binding's certificate is presented and public CAs are trusted; remove them"
        )
      }
    }
  }
  return problems
}
