/** openid-client's DPoP option for a grant: one handle per session key, so its nonces carry over. */
import * as client from 'openid-client'
import type { DpopKey } from './dpop.ts'

// The handle remembers the IdP's `DPoP-Nonce`; kept per discovered configuration and key pair.
const handles = new WeakMap<client.Configuration, WeakMap<CryptoKeyPair, client.DPoPHandle>>()

/** `{ DPoP }` for a call made with the session's key, or nothing without one. */
export function dpopOption(
  oidc: client.Configuration,
  key: DpopKey | undefined
): { DPoP?: client.DPoPHandle } {
  if (!key) return {}
  let byKey = handles.get(oidc)
  if (!byKey) handles.set(oidc, (byKey = new WeakMap()))
  let handle = byKey.get(key.keyPair)
  if (!handle) byKey.set(key.keyPair, (handle = client.getDPoPHandle(oidc, key.keyPair)))
  return { DPoP: handle }
}

/** `{ tokenType: 'DPoP' }` when the IdP says the token is bound (openid-client lower-cases it). */
export function tokenTypeOf(tokens: client.TokenEndpointResponse): { tokenType?: 'DPoP' } {
  return tokens.token_type?.toLowerCase() === 'dpop' ? { tokenType: 'DPoP' } : {}
}
