/**
 * Tokens the instances of a cluster share rather than each asking the IdP for its own: the BFF's
 * client-credentials tokens (client-token.ts) and a session's exchanged tokens (exchange-token.ts).
 * A coordinator of the runtime's keeps each under a key until it expires, and when it is due for
 * renewal lets one instance ask the IdP while the others wait for its result, as the refresh
 * coordinator does for refresh grants: a Redis lock on Node (`redisSharedTokenCoordinator`), a
 * Durable Object on Workers (`durableObjectSharedTokenCoordinator`).
 */
import type { DpopJwk } from '../session/types.ts'

/** A token as the cluster shares it. Times in epoch seconds. */
export interface SharedToken {
  accessToken: string
  expiresAt: number
  /** From when it is due for renewal: shortly before it expires. */
  renewAt: number
  /**
   * `DPoP` when bound to a key: the session's (exchanged tokens of a DPoP session), or
   * `dpopKey` (client-credentials tokens).
   */
  tokenType?: 'DPoP'
  /**
   * The private key a client-credentials token is bound to, the BFF's own (no session holds it):
   * shared with the token, so every instance proves the key the token is bound to.
   */
  dpopKey?: DpopJwk
}

export interface SharedTokenCoordinator {
  /**
   * The token shared under `key` while it is not due for renewal (`renewAt`), else the result of
   * one `grant` for every instance: the others wait for it rather than asking the IdP too. Throws
   * what `grant` threw, or its own failure (its store down, a wait too long).
   */
  tokenOnce(key: string, grant: () => Promise<SharedToken>): Promise<SharedToken>
}

/** A key of fixed size and plain characters for `parts`: SHA-256, hex. */
export async function sharedTokenKey(...parts: unknown[]): Promise<string> {
  const hash = await crypto.subtle.digest(
    'SHA-256',
    new TextEncoder().encode(JSON.stringify(parts))
  )
  return [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, '0')).join('')
}
