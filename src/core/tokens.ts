/**
 * "Give me a fresh access token for this session." Refreshes shortly before expiry, and makes
 * concurrent requests of one session share a single refresh grant (single-flight): with rotating
 * refresh tokens a second, parallel grant would present an already-spent token and end the session.
 */
import { BffError } from './errors.ts'
import type { OidcClient } from './oidc.ts'
import { userClaims } from './oidc.ts'
import type { Session, SessionStore } from './session/types.ts'

export type TokenResult =
  | { kind: 'fresh'; session: Session }
  | { kind: 'refreshed'; session: Session }
  | { kind: 'error'; error: BffError }

export interface TokenManager {
  /** A session whose access token is valid for at least the skew, refreshing it if needed. */
  freshSession(session: Session): Promise<TokenResult>
}

export interface TokenManagerOptions {
  oidc: OidcClient
  /** When the store offers `refreshOnce`, refreshes are coordinated across instances through it. */
  store?: SessionStore
  skewSeconds: number
  /** Epoch milliseconds. */
  now?: () => number
  /** How long a refresh result is reused for requests still carrying the old refresh token. */
  graceSeconds?: number
}

interface Refreshed {
  session: Session
  until: number
}

export function createTokenManager(options: TokenManagerOptions): TokenManager {
  const { oidc, skewSeconds } = options
  const now = options.now ?? Date.now
  const graceMs = (options.graceSeconds ?? 30) * 1000
  // Keyed by the refresh token being spent: every caller holding it joins the same grant.
  const inFlight = new Map<string, Promise<Session>>()
  // After a rotation, a request that read the session (or cookie) before the write still holds the
  // old refresh token; it gets the new tokens instead of spending the old one a second time.
  const recent = new Map<string, Refreshed>()

  function remember(oldRefreshToken: string, session: Session) {
    const t = now()
    for (const [key, entry] of recent) if (entry.until <= t) recent.delete(key)
    recent.set(oldRefreshToken, { session, until: t + graceMs })
  }

  async function refresh(session: Session, refreshToken: string): Promise<Session> {
    const refreshed = options.store?.refreshOnce
      ? await options.store.refreshOnce(session, grant).catch((err) => {
          if (err instanceof BffError) throw err
          // The coordination failed (store down, lock wait too long), not the IdP: retry later.
          throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
            cause: err,
          })
        })
      : await grant(session)
    remember(refreshToken, refreshed)
    return refreshed
  }

  /** One refresh grant at the IdP; the caller makes sure it is the only one. */
  async function grant(session: Session): Promise<Session> {
    const tokens = await oidc.refresh(session.refreshToken!, session.sub)
    const refreshed: Session = {
      ...session,
      accessToken: tokens.accessToken,
      refreshToken: tokens.refreshToken,
      idToken: tokens.idToken ?? session.idToken,
      accessTokenExpiresAt: tokens.accessTokenExpiresAt,
      claims: tokens.claims ? { ...session.claims, ...userClaims(tokens.claims) } : session.claims,
      generation: session.generation + 1,
    }
    return refreshed
  }

  return {
    async freshSession(session) {
      const nowSeconds = now() / 1000
      if (session.accessTokenExpiresAt - skewSeconds > nowSeconds) return { kind: 'fresh', session }
      const refreshToken = session.refreshToken
      if (!refreshToken) {
        return {
          kind: 'error',
          error: new BffError(401, 'session_expired', 'The access token expired; log in again.'),
        }
      }
      const cached = recent.get(refreshToken)
      if (cached && cached.until > now() && cached.session.generation > session.generation) {
        return { kind: 'refreshed', session: cached.session }
      }
      let pending = inFlight.get(refreshToken)
      if (!pending) {
        pending = refresh(session, refreshToken).finally(() => inFlight.delete(refreshToken))
        inFlight.set(refreshToken, pending)
      }
      try {
        return { kind: 'refreshed', session: await pending }
      } catch (err) {
        const error =
          err instanceof BffError
            ? err
            : new BffError(502, 'idp_error', 'Refreshing the access token failed.', { cause: err })
        return { kind: 'error', error }
      }
    },
  }
}
