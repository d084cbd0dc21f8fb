/**
 * Mutual TLS to upstreams on Node: each route with `tls` gets an undici Agent of its own whose
 * connections present the route's client certificate (`cert`, `key`) and trust the route's `ca`
 * (instead of the public CAs) when it has one. One Agent per route, never per upstream: kept-alive
 * connections are pooled by origin, and a connection opened with one route's certificate must
 * never carry another route's calls, even to the same host.
 */
import { X509Certificate } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import { Agent } from 'undici'
import type { ApiRoute } from '../../core/config/options.ts'
import { ConfigError } from '../../core/config/options.ts'
import { errorReason } from '../../core/observe/log.ts'
import { upstreamTlsProblems } from '../../core/proxy/upstream-tls.ts'

type RouteTls = NonNullable<ApiRoute['tls']>

export interface TlsAgents {
  /** The route's own Agent, made on first use; undefined for a route without `tls`. */
  agentFor(route: ApiRoute | undefined): Agent | undefined
  /** Closes every Agent made so far. */
  close(): Promise<void>
}

/**
 * Agents for the routes with `tls`; those of `routes` are made at once, so a PEM text that cannot
 * be read or a key that does not match its certificate stops start-up, naming the route.
 * @throws ConfigError naming every route whose `tls` cannot be used.
 */
export function tlsAgents(routes: readonly ApiRoute[] = []): TlsAgents {
  // By prefix, then by the tls texts: `createBff` resolves the routes it is given once more, so
  // the route objects of a call are not those given here, but their prefix and texts are.
  const agents = new Map<string, { tls: RouteTls; agent: Agent }[]>()
  const find = ({ prefix, tls }: ApiRoute) =>
    agents
      .get(prefix)
      ?.find(({ tls: t }) => t.cert === tls!.cert && t.key === tls!.key && t.ca === tls!.ca)?.agent
  const make = (route: ApiRoute & { tls: RouteTls }): Agent => {
    const { cert, key, ca, binding } = route.tls
    if (binding !== undefined) throw new ConfigError(upstreamTlsProblems([route], 'pem'))
    const connect = Object.fromEntries(
      Object.entries({ cert, key, ca }).filter(([, value]) => value !== undefined)
    ) as { cert?: string; key?: string; ca?: string }
    try {
      // What the Agent would do on its first connection, done now: the PEM texts parsed, the key
      // matched to the certificate. The error names its kind, never the texts. A `ca` without a
      // single certificate in it is passed over silently by Node (and then trusts no server).
      createSecureContext(connect)
      if (ca !== undefined) checkCertificates(ca)
    } catch (err) {
      throw new ConfigError([
        `route "${route.prefix}": "tls" cannot be used (${errorReason(err)}): "cert" and "key" ` +
          'must be a PEM certificate (chain) and its private key, "ca" PEM certificates',
      ])
    }
    const agent = new Agent({ connect })
    agents.set(route.prefix, [...(agents.get(route.prefix) ?? []), { tls: route.tls, agent }])
    return agent
  }

  const problems: string[] = []
  for (const route of routes) {
    if (!route.tls) continue
    try {
      make(route as Parameters<typeof make>[0])
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems.push(...err.problems)
    }
  }
  if (problems.length) {
    for (const { agent } of [...agents.values()].flat()) void agent.destroy()
    throw new ConfigError(problems)
  }

  return {
    agentFor(route) {
      if (!route?.tls) return undefined
      return find(route) ?? make(route as Parameters<typeof make>[0])
    },
    async close() {
      const all = [...agents.values()].flat()
      agents.clear()
      await Promise.all(all.map(({ agent }) => agent.destroy().catch(() => {})))
    },
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/** Throws unless `pem` holds at least one certificate and every one of them parses. */
function checkCertificates(pem: string): void {
  const blocks = pem.match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) {
    throw Object.assign(new Error('no certificate'), { code: 'ERR_NO_PEM_CERTIFICATE' })
  }
  for (const block of blocks) new X509Certificate(block)
}
