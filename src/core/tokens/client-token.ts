/**
 * The BFF's own tokens for `client` routes (client credentials; no session, no user): one per
 * scopes-and-resource pair, cached until shortly before it expires (the refresh skew, at most half
 * its lifetime). Concurrent callers share one grant: in this process by a single flight, across
 * the cluster by a `ClientTokenCoordinator` (a Redis lock on Node, a Durable Object on Workers)
 * that also shares the token itself, so N instances ask the IdP once, not N times.
 */
import { BffError } from '../errors.ts'
import type { OidcClient } from '../oidc/types.ts'
import { skewFor } from './token-manager.ts'

/** A client token as the cluster shares it. */
export interface SharedClientToken {
  accessToken: string
  /** Epoch seconds. */
  expiresAt: number
  /** Epoch seconds from which it is due for renewal. */
  renewAt: number
}

export interface ClientTokenCoordinator {
  /**
   * The token shared under `key` while it is not due for renewal (`renewAt`), else the result of
   * one `grant` for every instance: the others wait for it rather than asking the IdP too. Throws
   * what `grant` threw, or its own failure (its store down, a wait too long).
   */
  tokenOnce(key: string, grant: () => Promise<SharedClientToken>): Promise<SharedClientToken>
}

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
  coordinator?: ClientTokenCoordinator
  /** Epoch milliseconds. */
  now?: () => number
}

/** The cache key of a target: SHA-256 (hex) of its resource and sorted scopes, of fixed size. */
export async function clientTokenKey({ scopes, resource }: ClientTokenTarget): Promise<string> {
  const text = JSON.stringify([resource ?? null, [...(scopes ?? [])].sort()])
  const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))
  return [...new Uint8Array(hash)].map((b) => b.toString(16).padStart(2, '0')).join('')
}

export function createClientTokens(options: ClientTokensOptions): ClientTokens {
  const { oidc, skewSeconds, coordinator } = options
  const now = options.now ?? Date.now
  const cache = new Map<string, SharedClientToken>()
  const inFlight = new Map<string, Promise<SharedClientToken>>()

  async function grant(target: ClientTokenTarget): Promise<SharedClientToken> {
    const token = await oidc.clientCredentials(target)
    return {
      accessToken: token.accessToken,
      expiresAt: token.expiresAt,
      renewAt: token.expiresAt - skewFor(token.lifetime, skewSeconds),
    }
  }

  async function shared(key: string, target: ClientTokenTarget): Promise<SharedClientToken> {
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
