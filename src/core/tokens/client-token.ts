/**
 * The BFF's own tokens for `client` routes (client credentials; no session, no user): one per
 * scopes-and-resource pair, cached until shortly before it expires (the refresh skew, at most half
 * its lifetime). Concurrent callers share one grant: in this process by a single flight, across
 * the cluster by a `SharedTokenCoordinator` (a Redis lock on Node, a Durable Object on Workers)
 * that also shares the token itself, so N instances ask the IdP once, not N times.
 */
import { BffError } from '../errors.ts'
import type { OidcClient } from '../oidc/types.ts'
import { sharedTokenKey, type SharedToken, type SharedTokenCoordinator } from './shared-token.ts'
import { skewFor } from './token-manager.ts'

/** What a `client` route asks for. */
export interface ClientTokenTarget {
  scopes?: readonly string[]
  resource?: string
}

export interface ClientTokens {
  /** The access token for `target`, from the cache or one grant. */
  token(target: ClientTokenTarget): Promise<string>
}

export interface ClientTokensOptions {
  oidc: OidcClient
  skewSeconds: number
  /** Shares tokens and grants across instances; without it, this process only. */
  coordinator?: SharedTokenCoordinator
  /** Epoch milliseconds. */
  now?: () => number
}

/** The cache key of a target: its resource and sorted scopes. */
export function clientTokenKey({ scopes, resource }: ClientTokenTarget): Promise<string> {
  return sharedTokenKey('client', resource ?? null, [...(scopes ?? [])].sort())
}

export function createClientTokens(options: ClientTokensOptions): ClientTokens {
  const { oidc, skewSeconds, coordinator } = options
  const now = options.now ?? Date.now
  const cache = new Map<string, SharedToken>()
  const inFlight = new Map<string, Promise<SharedToken>>()

  async function grant(target: ClientTokenTarget): Promise<SharedToken> {
    const token = await oidc.clientCredentials(target)
    return {
      accessToken: token.accessToken,
      expiresAt: token.expiresAt,
      renewAt: token.expiresAt - skewFor(token.lifetime, skewSeconds),
    }
  }

  async function shared(key: string, target: ClientTokenTarget): Promise<SharedToken> {
    if (!coordinator) return grant(target)
    try {
      return await coordinator.tokenOnce(key, () => grant(target))
    } catch (err) {
      if (err instanceof BffError) throw err
      // The coordination failed (store down, wait too long), not the IdP.
      throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
        cause: err,
      })
    }
  }

  return {
    async token(target) {
      const key = await clientTokenKey(target)
      const cached = cache.get(key)
      if (cached && cached.renewAt > now() / 1000) return cached.accessToken
      let pending = inFlight.get(key)
      if (!pending) {
        pending = shared(key, target)
          .then((token) => {
            cache.set(key, token)
            return token
          })
          .finally(() => inFlight.delete(key))
        inFlight.set(key, pending)
      }
      try {
        return (await pending).accessToken
      } catch (err) {
        // Due for renewal but still valid: the IdP or the store being away need not fail the call.
        if (cached && cached.expiresAt > now() / 1000) return cached.accessToken
        throw err
      }
    },
  }
}
