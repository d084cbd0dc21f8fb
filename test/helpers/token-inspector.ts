/**
 * What an upstream learns of the bearer token it receives, as a resource server would: a JWT access
 * token is verified against the IdP's keys and read; an opaque one is introspected (RFC 7662). Tests
 * use it to see which token reached which upstream (`aud`, `scope`, `sub`, `client_id`).
 */
import * as jose from 'jose'
import * as client from 'openid-client'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'

export interface TokenView {
  format: 'jwt' | 'opaque'
  active: boolean
  aud?: string | string[]
  scope?: string
  sub?: string
  client_id?: string
  exp?: number
}

export type Inspect = (token: string) => Promise<TokenView>

/** Reads tokens of `issuer`'s IdP; introspects as the given client (the BFF's by default). */
export function tokenInspector(
  issuer: string,
  credentials: { clientId: string; clientSecret: string } = DEMO_BFF_CLIENT
): Inspect {
  const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`))
  let config: Promise<client.Configuration> | undefined
  return async (token) => {
    if (/^eyJ[\w-]*\.[\w-]*\.[\w-]*$/.test(token)) {
      try {
        const { payload } = await jose.jwtVerify(token, jwks, { issuer })
        return { format: 'jwt', active: true, ...pick(payload) }
      } catch {
        return { format: 'jwt', active: false }
      }
    }
    config ??= client.discovery(
      new URL(issuer),
      credentials.clientId,
      credentials.clientSecret,
      undefined,
      { execute: [client.allowInsecureRequests] }
    )
    const result = await client.tokenIntrospection(await config, token)
    return { format: 'opaque', active: result.active, ...pick(result) }
  }
}

function pick(claims: Record<string, unknown>): Omit<TokenView, 'format' | 'active'> {
  const { aud, scope, sub, client_id, exp } = claims as Omit<TokenView, 'format' | 'active'>
  return { aud, scope, sub, client_id, exp }
}
