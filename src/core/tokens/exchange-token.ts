/**
 * RFC 8693 tokens for `exchange` routes: the session's access token exchanged for a token for the
 * route's resource (with the route's scopes), cached in the session under that pair. Each entry
 * remembers a digest of the access token it came from, so once the session's token is refreshed
 * (by any path: this instance, another one, a Durable Object) the route's next call exchanges
 * again; a cached token is also exchanged again shortly before it expires.
 *
 * One exchange for concurrent calls: in this process by a single flight, plus, for calls that read
 * their session before the token was stored, the result for a grace window (as the token manager
 * does for refreshes); across instances through the `SharedTokenCoordinator`, under a key of the
 * session, the access token and the target, so no other session can ever be handed the token.
 *
 * An exchange spends nothing (the refresh token is untouched), so unlike a resource grant it is
 * not one of the session's generations: the entry is written at the session's generation, and a
 * write lost to a parallel request only costs a look-up (or an exchange) later.
 */
import { BffError } from '../errors.ts'
import { sessionDpopKey } from '../oidc/dpop.ts'
import { oidcOfSession, type SessionOidc } from '../oidc/idps.ts'
import type { TraceContext } from '../observe/trace.ts'
import type { ExchangedToken, Session } from '../session/types.ts'
import { sharedTokenKey, type SharedToken, type SharedTokenCoordinator } from './shared-token.ts'
import { skewFor } from './token-manager.ts'

/** What an `exchange` route asks for. */
export interface ExchangeTarget {
  resource: string
  scopes?: readonly string[]
}

export interface TokenExchanges {
  /**
   * The token for `target` exchanged from `session`'s access token, and the session to store
   * when it got a new one. Throws a `BffError` when the IdP refuses (502 `token_unavailable`) or
   * cannot be reached, unless a cached token of this access token still works. The exchange is
   * a child of `trace` (the request that asked first: callers that join one under way add none).
   */
  token(
    session: Session,
    target: ExchangeTarget,
    trace?: TraceContext
  ): Promise<{ accessToken: string; tokenType?: 'DPoP'; session?: Session }>
}

export interface TokenExchangesOptions {
  /** The IdP the exchange goes to: the one that issued the session's token (`oidcFor`). */
  oidc: SessionOidc
  skewSeconds: number
  /** Shares exchanged tokens across instances; without it, this process only. */
  coordinator?: SharedTokenCoordinator
  /** Epoch milliseconds. */
  now?: () => number
  /** How long an exchange's result is handed to calls that read their session before it. */
  graceSeconds?: number
}

/** The session's cache key of a target: the resource and the sorted scopes. */
export function exchangeKey({ resource, scopes }: ExchangeTarget): string {
  return [resource, ...[...(scopes ?? [])].sort()].join(' ')
}

/** A short digest of a token (128 bits of SHA-256, base64url): which token an entry came from. */
async function digest(token: string): Promise<string> {
  const hash = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))
  let binary = ''
  for (const byte of new Uint8Array(hash).slice(0, 16)) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

export function createTokenExchanges(options: TokenExchangesOptions): TokenExchanges {
  const { skewSeconds, coordinator } = options
  const oidcFor = oidcOfSession(options.oidc)
  const now = options.now ?? Date.now
  const graceMs = (options.graceSeconds ?? 30) * 1000
  const inFlight = new Map<string, Promise<SharedToken>>()
  // Flight key -> the exchange's result, until a grace window passes. One TTL, so insertion order
  // is expiry order: expired entries are at the front and dropped as new ones arrive.
  const recent = new Map<string, { token: SharedToken; until: number }>()

  function remember(flight: string, token: SharedToken) {
    const t = now()
    for (const [key, entry] of recent) {
      if (entry.until > t) break
      recent.delete(key)
    }
    recent.delete(flight)
    recent.set(flight, { token, until: t + graceMs })
  }

  const due = (token: SharedToken) => token.renewAt <= now() / 1000

  /** One exchange at the IdP, a child of `trace`. */
  async function exchange(
    session: Session,
    target: ExchangeTarget,
    trace?: TraceContext
  ): Promise<SharedToken> {
    const token = await oidcFor(session).exchange(
      session.accessToken,
      target,
      await sessionDpopKey(session),
      trace
    )
    return {
      accessToken: token.accessToken,
      expiresAt: token.expiresAt,
      renewAt: token.expiresAt - skewFor(token.lifetime, skewSeconds),
      ...(token.tokenType ? { tokenType: token.tokenType } : {}),
    }
  }

  /** The exchange, once across the instances when they share tokens. */
  async function shared(
    session: Session,
    subject: string,
    target: ExchangeTarget,
    trace?: TraceContext
  ): Promise<SharedToken> {
    if (!coordinator) return exchange(session, target, trace)
    const key = await sharedTokenKey('exchange', session.id, subject, exchangeKey(target))
    try {
      return await coordinator.tokenOnce(key, () => exchange(session, target, trace))
    } catch (err) {
      if (err instanceof BffError) throw err
      // The coordination failed (store down, wait too long), not the IdP.
      throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
        cause: err,
      })
    }
  }

  return {
    async token(session, target, trace) {
      const key = exchangeKey(target)
      const subject = await digest(session.accessToken)
      const entries = session.exchangedTokens
      const cached = entries && Object.hasOwn(entries, key) ? entries[key] : undefined
      const mine = cached?.subject === subject ? cached : undefined
      if (mine && !due(mine)) return { accessToken: mine.accessToken, tokenType: mine.tokenType }

      const flight = `${session.id}\n${subject}\n${key}`
      const known = recent.get(flight)
      let pending = inFlight.get(flight)
      if (known && known.until > now() && !due(known.token)) pending = Promise.resolve(known.token)
      if (!pending) {
        pending = shared(session, subject, target, trace)
          .then((token) => {
            remember(flight, token)
            return token
          })
          .finally(() => inFlight.delete(flight))
        inFlight.set(flight, pending)
      }
      let token: SharedToken
      try {
        token = await pending
      } catch (err) {
        // Still valid and from this very access token: better than failing the call.
        if (mine && mine.expiresAt > now() / 1000)
          return { accessToken: mine.accessToken, tokenType: mine.tokenType }
        throw err
      }
      const exchanged: ExchangedToken = { ...token, subject }
      const updated: Session = {
        ...session,
        exchangedTokens: { ...stillUseful(entries, subject), [key]: exchanged },
      }
      return { accessToken: token.accessToken, tokenType: token.tokenType, session: updated }
    },
  }
}

/** Entries exchanged from an access token the session no longer has are of no further use. */
function stillUseful(
  entries: Session['exchangedTokens'],
  subject: string
): Record<string, ExchangedToken> {
  return Object.fromEntries(Object.entries(entries ?? {}).filter(([, e]) => e.subject === subject))
}
