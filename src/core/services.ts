/**
 * What every route needs, built once per app by `createBff`: settings, the OIDC client, sessions,
 * token management, logging and the runtime's hooks.
 */
import type { Context } from 'hono'
import type { Config } from './config/options.ts'
import type { Audit } from './observe/audit.ts'
import type { BffMetrics } from './observe/bff-metrics.ts'
import type { Logger } from './observe/log.ts'
import type { Tracer } from './observe/trace.ts'
import type { Forwarder } from './proxy/forward.ts'
import type { Upgrader } from './proxy/websocket.ts'
import type { IdpRegistry } from './oidc/idps.ts'
import type { OidcClient } from './oidc/types.ts'
import type { PolicyPoint } from './policy/authorize.ts'
import type { ReplayGuard } from './oidc/replay-guard.ts'
import type { Sealer } from './session/seal.ts'
import type { SessionManager } from './session/manager.ts'
import type { LiveSessions, SessionEndBus } from './session/live.ts'
import type { ClientTokens } from './tokens/client-token.ts'
import type { TokenExchanges } from './tokens/exchange-token.ts'
import type { TokenManager } from './tokens/token-manager.ts'

export interface BffServices {
  config: Config
  /** Every IdP with its own client; a session's refreshes, revocation and logout go to its own. */
  idps: IdpRegistry
  /** The first IdP's client: the one of `client` routes' client-credentials tokens. */
  oidc: OidcClient
  sessions: SessionManager
  /** Tells every instance that sessions ended (logout, back-channel, admin, expiry, refused refresh). */
  sessionEnds: SessionEndBus
  /** This instance's live connections (WebSockets, event streams), closed when their session ends. */
  live: LiveSessions
  tokens: TokenManager
  /** The BFF's own client-credentials tokens, for `client` routes. */
  clientTokens: ClientTokens
  /** Tokens exchanged from the session's (RFC 8693), for `exchange` routes. */
  exchanges: TokenExchanges
  /** One-time use of logout token `jti`s. */
  replay: ReplayGuard
  sealer: Sealer
  log: Logger
  /** Writes the audit trail's security events (observe/audit.ts) through `log`. */
  audit: Audit
  /** Prometheus metrics (`/bff/metrics`); does nothing without `metricsToken`. */
  metrics: BffMetrics
  /** Epoch milliseconds. */
  now: () => number
  /** fetch used for upstream API calls. */
  upstreamFetch: typeof fetch
  /** Sends a proxied API call upstream: `forward` over `upstreamFetch` unless the runtime has its own. */
  forward: Forwarder
  /** Opens and relays the WebSockets of `websocket` routes: the runtime's (`deps.upgrade`). */
  upgrade?: Upgrader
  /** The routes' external policy decision points (`authorize`), with their cached decisions. */
  policy: PolicyPoint
  /** Records spans (`deps.tracer`); without one, upstream calls still carry a child `traceparent`. */
  tracer?: Tracer
  /** The client's address as the runtime sees it, for X-Forwarded-For. */
  clientIp: (c: Context) => string | undefined
}
