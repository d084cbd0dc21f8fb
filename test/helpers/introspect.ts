/**
 * What an IdP says of a token, asked as the demo API's client (a resource server may
 * introspect): works whatever the BFF's own client authenticates with (secret, private_key_jwt).
 */
import * as client from 'openid-client'
import { apiClientMetadata, DEMO_API_CLIENT, type Idp } from '../../src/demo/idp.ts'

export async function introspectAsApi(idp: Idp, token: string) {
  await idp.addClient(apiClientMetadata())
  const config = await client.discovery(
    new URL(idp.issuer),
    DEMO_API_CLIENT.clientId,
    DEMO_API_CLIENT.clientSecret,
    undefined,
    { execute: [client.allowInsecureRequests] }
  )
  return client.tokenIntrospection(config, token)
}
