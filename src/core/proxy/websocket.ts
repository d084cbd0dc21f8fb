/**
 * WebSocket upgrades on routes with `websocket: true` (DESIGN "Streaming"). The API proxy
 * (routes/api.ts) checks an upgrade as it checks every call, `Origin` standing in for `X-CSRF`;
 * this module then builds the upstream's upgrade request (the route's token, headers cleaned as
 * for HTTP calls, the browser's subprotocols), ties the socket to its session (socket-life.ts) and
 * hands it to the runtime's `Upgrader`, which opens the upstream socket and relays frames (Node:
 * src/adapters/node/websocket.ts). An upstream that refuses the upgrade is answered as any
 * upstream answer is: its status, its headers cleaned, a step-up challenge turned into 401
 * `step_up_required`.
 */
import type { Context } from 'hono'
import type { ApiRoute } from '../config/options.ts'
import { BffError } from '../errors.ts'
import type { BffEnv } from '../hono-env.ts'
import { upstreamTrace } from '../observe/spans.ts'
import { dpopKey, upstreamProof } from '../oidc/dpop.ts'
import type { BffServices } from '../services.ts'
import type { Session } from '../session/types.ts'
import type { RouteAccessToken } from '../tokens/route-token.ts'
import { upstreamNonceChallenge, type UpstreamNonces } from './dpop-challenge.ts'
import { publicLocation, responseHeaders, upstreamHeaders } from './forward.ts'
import { socketLife, type SocketLife } from './socket-life.ts'
import { stepUpChallenge, stepUpRequired } from './step-up-challenge.ts'

export type { SocketLife } from './socket-life.ts'

/** An upgrade the route's policy allowed, for the runtime to open upstream and relay. */
export interface WebSocketUpgrade {
  /** The upstream socket's URL: `ws:`/`wss:`, the route's upstream with the request's path. */
  url: URL
  /**
   * The upgrade request's headers for the upstream: the browser's, cleaned as for HTTP calls
   * (no Cookie, no X-CSRF, nothing a browser could forge to steer an upstream), with the route's
   * token (`Authorization`, and `DPoP` with a proof for `GET` and the upstream's http(s) URL),
   * X-Forwarded-* and trace context. No `Sec-WebSocket-*`: the runtime's client sends its own.
   */
  headers: Headers
  /** The subprotocols the browser offered (`Sec-WebSocket-Protocol`), in its order. */
  protocols: string[]
  route: ApiRoute
  /** How long to wait for the upstream's answer to the upgrade, in milliseconds. */
  timeoutMs: number
  /** When to close both sockets (the session ended); told when they closed. */
  life: SocketLife
}

/**
 * What the runtime made of an upgrade: `accepted`, the answer that completes the browser's
 * handshake (Workers: a 101 with the socket; Node: a placeholder its upgrade handler recognises),
 * or `refused`, the upstream's own answer to the upgrade request, headers as it sent them.
 */
export type UpgradeOutcome = { accepted: Response } | { refused: Response }

/**
 * The runtime's part of a WebSocket route: connects to `upgrade.url` and answers once the upstream
 * accepted or refused; throws 502 `upstream_unavailable` when it cannot be reached and 504
 * `upstream_timeout` when it does not answer in time. Once accepted, it relays frames both ways
 * with backpressure, passes close codes, closes both sides when `upgrade.life` says so, and calls
 * `upgrade.life.release()` when the sockets have closed (or the handshake did not complete).
 */
export type Upgrader = (c: Context, upgrade: WebSocketUpgrade) => Promise<UpgradeOutcome>

/** A WebSocket opening handshake (RFC 6455 4.1): a GET asking to upgrade to `websocket`. */
export function isWebSocketUpgrade(request: Request): boolean {
  return (
    request.method === 'GET' && request.headers.get('upgrade')?.trim().toLowerCase() === 'websocket'
  )
}

// RFC 9110 5.6.2 token: what RFC 6455 4.1 allows as a subprotocol name.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** The subprotocols of a `Sec-WebSocket-Protocol` value; 400 when one is no token or repeated. */
export function offeredProtocols(header: string | undefined): string[] {
  if (header === undefined) return []
  const protocols = header.split(',').map((name) => name.trim())
  if (protocols.some((name) => !TOKEN.test(name)) || new Set(protocols).size < protocols.length) {
    throw new BffError(400, 'invalid_request', 'The Sec-WebSocket-Protocol header is malformed.')
  }
  return protocols
}

/** The refusals of the live-connection limits (`services.live`). */
const LIMIT_MESSAGES = {
  session_limit: 'This session has as many open connections as it may have.',
  instance_limit: 'This server has as many open connections as it may have; try again later.',
}

/**
 * Opens the WebSocket of an upgrade whose route policy passed, through the runtime's `Upgrader`:
 * the answer completes the browser's handshake, or is the upstream's refusal (or 429
 * `too_many_connections` when the session or this instance holds as many as allowed).
 */
export async function openWebSocket(
  s: BffServices,
  c: Context<BffEnv>,
  call: {
    route: ApiRoute
    /** The upstream's http(s) URL for the request (`upstreamUrl`): inside the route's prefix. */
    target: URL
    session: Session | null
    token: RouteAccessToken | undefined
    nonces: UpstreamNonces
  }
): Promise<Response> {
  const { route, target, session, token, nonces } = call
  if (!s.upgrade) {
    // createBff refuses a `websocket` route without an upgrader; a host app may still lack one.
    throw new BffError(501, 'not_supported', 'WebSockets are not available on this server.')
  }
  const protocols = offeredProtocols(c.req.header('sec-websocket-protocol'))
  const life = socketLife(s, c, session)
  if ('refused' in life) {
    s.log('warn', 'websocket.refused', { route: route.prefix, reason: life.refused })
    return c.json({ error: 'too_many_connections', message: LIMIT_MESSAGES[life.refused] }, 429, {
      'Cache-Control': 'no-store',
    })
  }
  const url = new URL(target)
  url.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:'
  // A token bound to a key (the session's, or the BFF's own) goes with a proof of that key.
  const key =
    token?.tokenType === 'DPoP' && token.dpopKey ? await dpopKey(token.dpopKey) : undefined
  const trace = upstreamTrace(s.tracer, c, route, target)
  const started = s.metrics.enabled ? performance.now() : 0
  const attempt = async (nonce?: string) => {
    const headers = upstreamHeaders(c.req.raw.headers, {
      accessToken: token?.accessToken,
      // RFC 9449 4.2: the proof is for the upgrade request, a GET of the upstream's http(s) URL.
      dpop:
        key && token
          ? await upstreamProof(key, 'GET', target, token.accessToken, nonce)
          : undefined,
      baseUrl: s.config.baseUrl,
      clientIp: s.clientIp(c),
      trace: trace.headers,
    })
    for (const name of [...headers.keys()]) {
      if (name.startsWith('sec-websocket-')) headers.delete(name)
    }
    return s.upgrade!(c, {
      url,
      headers,
      protocols,
      route,
      timeoutMs: s.config.upstreamTimeoutMs,
      life,
    })
  }

  let outcome: UpgradeOutcome
  try {
    outcome = await attempt(key ? nonces.get(target) : undefined)
    // An upstream asking for a DPoP nonce gets the upgrade once more, with it (RFC 9449 9).
    if ('refused' in outcome && key && outcome.refused.status === 401) {
      const h = outcome.refused.headers
      const nonce = upstreamNonceChallenge(h.get('www-authenticate'), h.get('dpop-nonce'))
      if (nonce) {
        nonces.set(target, nonce)
        await outcome.refused.body?.cancel().catch(() => {})
        outcome = await attempt(nonce)
      }
    }
  } catch (err) {
    life.release()
    trace.end(err)
    throw err
  }
  if (started) s.metrics.upstream(route.prefix, (performance.now() - started) / 1000)
  if ('accepted' in outcome) {
    trace.end(101)
    s.log('info', 'websocket.opened', { route: route.prefix })
    return outcome.accepted
  }

  life.release()
  const refused = outcome.refused
  trace.end(refused.status)
  s.log('info', 'websocket.upstream_refused', { route: route.prefix, status: refused.status })
  const stepUp = stepUpChallenge(refused.status, refused.headers.get('www-authenticate'))
  if (stepUp) return stepUpRequired(s, c, refused, stepUp, route)
  const headers = responseHeaders(refused.headers)
  const location = headers.get('location')
  if (location) headers.set('location', publicLocation(location, route, target))
  return new Response(refused.body, { status: refused.status, headers })
}
