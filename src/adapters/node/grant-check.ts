/**
 * Node's start-up check of the grants routes need: a route whose token mode needs a grant that the
 * IdP's discovery does not list in `grant_types_supported` (`client`: client_credentials,
 * `exchange`: token exchange) stops start-up, naming the route and the grant. Only when the IdP
 * answers now: one that is away at start-up must not keep the BFF down; its routes are refused
 * with 503 `grant_not_supported` once discovery shows the gap (core/oidc/grants.ts), as on
 * Workers, which have no start-up.
 */
import * as client from 'openid-client'
import type { Config } from '../../core/config/options.ts'
import { idpFetch } from '../../core/oidc/errors.ts'
import { grantFor } from '../../core/oidc/grants.ts'
import { configFor } from '../../core/oidc/idps.ts'

export async function grantProblems(config: Config, fetchImpl?: typeof fetch): Promise<string[]> {
  // Each IdP against the routes whose grants go to it.
  const problems = await Promise.all(
    (config.idps ?? []).map((idp, i) =>
      idpGrantProblems(configFor(config, idp, i === 0), fetchImpl)
    )
  )
  const several = (config.idps?.length ?? 1) > 1
  return problems.flatMap((lines, i) =>
    several ? lines.map((line) => `${line} (IdP "${config.idps[i]!.name}")`) : lines
  )
}

async function idpGrantProblems(config: Config, fetchImpl?: typeof fetch): Promise<string[]> {
  const needs = config.api.flatMap((route) => {
    const grant = grantFor(route)
    return grant ? [{ route, grant }] : []
  })
  if (needs.length === 0) return []
  let supported: unknown
  try {
    const discovered = await client.discovery(
      config.issuer,
      config.clientId,
      undefined,
      undefined,
      {
        timeout: config.idpTimeoutSeconds,
        execute: config.issuer.protocol === 'http:' ? [client.allowInsecureRequests] : [],
        [client.customFetch]: idpFetch(fetchImpl),
      }
    )
    supported = discovered.serverMetadata().grant_types_supported
  } catch {
    return [] // the IdP is away: the background check reports it, and the routes fail closed
  }
  if (!Array.isArray(supported)) return [] // the IdP does not say: the grant is tried
  return needs
    .filter(({ grant }) => !supported.includes(grant))
    .map(
      ({ route, grant }) =>
        `route "${route.prefix}" (token "${route.token ?? 'user'}") needs the ${grant} grant, which the IdP's discovery does not list in grant_types_supported`
    )
}
