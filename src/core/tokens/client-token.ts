/**
 * The BFF's own tokens for `client` routes (client credentials; no session, no user): one per
 * scopes-and-resource pair, cached until shortly before it expires (the refresh skew, at most half
 * its lifetime). Concurrent callers share one grant: in this process by a single flight, across
 * the cluster by a `SharedTokenCoordinator` (a Redis lock on Node, a Durable Object on Workers)
 * that also shares the token itself, so N instances ask the IdP once, not N times.
 *
 * With the first IdP's `dpop`, the grants carry proofs of a key of this BFF's own (one per
 * process, made at the first grant; client routes have no session to keep one): a token the IdP
 * binds to it is shared together with the key, so whichever instance sends it signs its proofs
 * with the key it is bound to.
 */
import { BffError } from '../errors.ts'
import { dpopKey, newDpopJwk, type DpopJwk } from '../oidc/dpop.ts'
import type { OidcClient } from '../oidc/types.ts'
import type { TraceContext } from '../observe/trace.ts'
import { sharedTokenKey, type SharedToken, type SharedTokenCoordinator } from './shared-token.ts'
import { skewFor } from './token-manager.ts'

/** What a `client` route asks for. */
export interface ClientTokenTarget {
  scopes?: readonly string[]
  resource?: string
}

/** A `client` route's token; `DPoP` with the key it is bound to when the IdP bound it. */
export interface ClientToken {
  accessToken: string
  tokenType?: 'DPoP'
  dpopKey?: DpopJwk
}

export interface ClientTokens {
  /**
   * The access token for `target`, from the cache or one grant, a child of `trace` (the request
   * that asked first: callers that join a grant under way add none).
   */
  token(target: ClientTokenTarget, trace?: TraceContext): Promise<ClientToken>
}

export interface ClientTokensOptions {
  oidc: OidcClient
  /** The IdP's `dpop`: grants carry proofs of the BFF's own key. */
  dpop?: boolean
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

  // Made once, at the first grant; a failure is not kept.
  let ownKey: Promise<DpopJwk> | undefined
  const key = () => {
    ownKey ??= newDpopJwk().catch((err: unknown) => {
      ownKey = undefined
      throw err
    })
    return ownKey
  }

  async function grant(target: ClientTokenTarget, trace?: TraceContext): Promise<SharedToken> {
    const jwk = options.dpop ? await key() : undefined
    const token = await oidc.clientCredentials(target, jwk && (await dpopKey(jwk)), trace)
    return {
      accessToken: token.accessToken,
      expiresAt: token.expiresAt,
      renewAt: token.expiresAt - skewFor(token.lifetime, skewSeconds),
      // Only a token the IdP bound goes with a key: a bearer one stays bearer.
      ...(token.tokenType && jwk ? { tokenType: token.tokenType, dpopKey: jwk } : {}),
    }
  }
  const answer = (token: SharedToken): ClientToken =>
    token.tokenType === 'DPoP' && token.dpopKey
      ? { accessToken: token.accessToken, tokenType: 'DPoP', dpopKey: token.dpopKey }
      : { accessToken: token.accessToken }

  async function shared(
    key: string,
    target: ClientTokenTarget,
    trace?: TraceContext
  ): Promise<SharedToken> {
    if (!coordinator) return grant(target, trace)
    try {
      return await coordinator.tokenOnce(key, () => grant(target, trace))
    } catch (err) {
      if (err instanceof BffError) throw err
      // The coordination failed (store down, wait too long), not the IdP.
      throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
        cause: err,
      })
    }
  }

  return {
    async token(target, trace) {
      const key = await clientTokenKey(target)
      const cached = cache.get(key)
      if (cached && cached.renewAt > now() / 1000) return answer(cached)
      let pending = inFlight.get(key)
      if (!pending) {
        pending = shared(key, target, trace)
          .then((token) => {
            cache.set(key, token)
            return token
          })
          .finally(() => inFlight.delete(key))
        inFlight.set(key, pending)
      }
      try {
        return answer(await pending)
      } catch (err) {
        // Due for renewal but still valid: the IdP or the store being away need not fail the call.
        if (cached && cached.expiresAt > now() / 1000) return answer(cached)
        throw err
      }
    },
  }
}
