/**
 * The demo upstream API behind the BFF's proxy. Node-only, node:http, JSON only. Every route
 * but `/catalog/` needs `Authorization: Bearer <access token>`, checked by introspection at the IdP (RFC 7662),
 * so a revoked token stops working at once. A DPoP-bound token (RFC 9449) must come as
 * `Authorization: DPoP <token>` with its proof, checked as dpop-proof.ts says and against the key
 * the IdP bound it to (`cnf.jkt`); as a bearer token it is refused. It may trust several IdPs (the demo has two): a token
 * is then good when one of them says it is active.
 *
 *   GET /hello   -> { message, sub, iss, scope, time }: `iss` is the IdP that vouched for the token
 *   GET /admin/  -> { message, sub, acr, auth_time, time } for a token from a login with the
 *                   second factor (`acr` "mfa"); any other token gets 401 with the RFC 9470
 *                   challenge `Bearer error="insufficient_user_authentication", acr_values="mfa"`,
 *                   which the BFF turns into `step_up_required` for the SPA (also `/admin`)
 *   GET /catalog/ -> { items }: public, the one route that needs no token (the BFF's route for it
 *                   has token "none": no session, no Authorization)
 *   ANY /echo*   -> { method, path, query, headers, body, sub, token }: what the proxy forwarded,
 *                   with `token` saying which token arrived ({ scheme, active, iss, sub, scope,
 *                   client_id, exp }, scheme `Bearer` or `DPoP`) in place of the token itself
 *   GET /ticker  -> Server-Sent Events, one a second (api-live.ts)
 *   WS  /live/feed -> a WebSocket feed, a message a second and an echo (api-live.ts)
 *
 * The demo shows that no token reaches the page, so no answer carries a credential: `/echo` leaves
 * out `Authorization` and every other header that can hold one (see CREDENTIAL_HEADERS).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import * as client from 'openid-client'
import {
  tokenChecker,
  type Authenticate,
  type Introspect,
  type IntrospectionResult,
} from './api-auth.ts'
import { attachLiveFeed, sendTicker } from './api-live.ts'

export type { Introspect, IntrospectionResult } from './api-auth.ts'

/** What `/catalog/` lists: public data, for a route with no user and no token. */
const CATALOG = [
  { id: 'tea', name: 'Green tea', price: 4.5 },
  { id: 'mug', name: 'Stoneware mug', price: 12 },
  { id: 'kettle', name: 'Pour-over kettle', price: 39 },
]

/** The authentication level `/admin` asks for. */
export const ADMIN_ACR = 'mfa'

/** Where and as whom to introspect. */
export interface IntrospectionClient {
  /** @example 'http://127.0.0.1:4000' */
  issuer: string
  clientId: string
  clientSecret: string
}

/**
 * Either `introspect` (a function, or where and as whom to introspect: one IdP or several) or the
 * `issuer`, `clientId` and `clientSecret` fields directly.
 * @example { port: 4000, issuer: idp.issuer, clientId: 'demo-api', clientSecret: 'demo-api-secret' }
 * @example { introspect: [{ issuer: corp.issuer, ... }, { issuer: partner.issuer, ... }] }
 */
export type DemoApiOptions = {
  /** Port on 127.0.0.1; `0` picks a free one. @default 0 */
  port?: number
} & (
  | { introspect: Introspect | IntrospectionClient | readonly IntrospectionClient[] }
  | IntrospectionClient
)

export interface DemoApi {
  /** e.g. `http://127.0.0.1:41235` (no trailing slash) */
  url: string
  port: number
  stop(): Promise<void>
}

export async function startDemoApi(options: DemoApiOptions): Promise<DemoApi> {
  const { port = 0 } = options
  const source = 'introspect' in options ? options.introspect : options
  let introspect: Introspect
  if (typeof source === 'function') introspect = source
  else {
    const clients: readonly IntrospectionClient[] = Array.isArray(source) ? source : [source]
    if (clients.length === 0) throw new TypeError('"introspect" must list at least one IdP')
    for (const client of clients) {
      for (const name of ['issuer', 'clientId', 'clientSecret'] as const) {
        if (typeof client?.[name] !== 'string' || !client[name]) {
          throw new TypeError(`"${name}" must be a non-empty string (or pass "introspect")`)
        }
      }
    }
    introspect = introspectAtAny(clients.map(introspectWith))
  }

  // One replay memory for the API's DPoP proofs, on every route and the feed's upgrades.
  const authenticate = tokenChecker(introspect)
  const server = createServer((req, res) => {
    handle(req, res, authenticate).catch((error: unknown) => {
      console.error('[demo-api] request failed', error)
      if (!res.headersSent) sendJson(res, 500, { error: 'internal_error' })
      else res.destroy()
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve())
  })
  const feed = attachLiveFeed(server, authenticate)
  const actualPort = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${actualPort}`,
    port: actualPort,
    stop: () => {
      feed.close()
      return closeServer(server)
    },
  }
}

/**
 * Introspection through openid-client: discovery once (retried after a failure), then one
 * introspection request per call. Plain http is allowed because the demo IdP runs on loopback.
 */
export function introspectWith({
  issuer,
  clientId,
  clientSecret,
}: IntrospectionClient): Introspect {
  let config: Promise<client.Configuration> | undefined
  const discover = () => {
    config ??= client
      .discovery(new URL(issuer), clientId, undefined, client.ClientSecretBasic(clientSecret), {
        execute: new URL(issuer).protocol === 'http:' ? [client.allowInsecureRequests] : [],
      })
      .catch((error: unknown) => {
        config = undefined
        throw error
      })
    return config
  }
  return async (token) => {
    const result = await client.tokenIntrospection(await discover(), token, {
      token_type_hint: 'access_token',
    })
    return result as IntrospectionResult
  }
}

/**
 * Asks each IdP in turn; the first that calls the token active wins. The demo's access tokens are
 * opaque, so nothing in one tells its issuer: an API trusting several IdPs with JWT access tokens
 * would pick the one named by `iss` instead, and never show one IdP's token to another. Here
 * every IdP is the demo's own. An IdP that cannot answer does not hide another's yes; when none
 * says yes and one failed, the answer is that failure, not "inactive".
 */
function introspectAtAny(introspectors: readonly Introspect[]): Introspect {
  if (introspectors.length === 1) return introspectors[0]!
  return async (token) => {
    let failure: unknown
    for (const introspect of introspectors) {
      try {
        const result = await introspect(token)
        if (result.active) return result
      } catch (error) {
        failure ??= error
      }
    }
    if (failure !== undefined) throw failure
    return { active: false }
  }
}

// Headers that carry credentials: the bearer token (and its DPoP proof, which names the token's
// hash) must never travel back to the browser through an API answer.
const CREDENTIAL_HEADERS = new Set(['authorization', 'proxy-authorization', 'dpop', 'cookie'])

async function handle(req: IncomingMessage, res: ServerResponse, authenticate: Authenticate) {
  const url = new URL(req.url ?? '/', 'http://api')
  const route =
    url.pathname === '/hello'
      ? 'hello'
      : /^\/admin\/?$/.test(url.pathname)
        ? 'admin'
        : /^\/catalog\/?$/.test(url.pathname)
          ? 'catalog'
          : /^\/echo(\/|$)/.test(url.pathname)
            ? 'echo'
            : url.pathname === '/ticker'
              ? 'ticker'
              : ''
  if (!route) return sendJson(res, 404, { error: 'not_found' })
  if (route !== 'echo' && req.method !== 'GET') {
    res.setHeader('allow', 'GET')
    return sendJson(res, 405, { error: 'method_not_allowed' })
  }
  if (route === 'catalog') {
    // Public: it says whether a token came, which on its BFF route must never happen.
    return sendJson(res, 200, {
      items: CATALOG,
      withToken: req.headers.authorization !== undefined,
    })
  }

  const checked = await authenticate(req, url)
  if ('refused' in checked) {
    const { status, headers, body } = checked.refused
    for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
    return sendJson(res, status, body)
  }
  const { scheme, introspection } = checked
  const { sub, scope, acr, iss } = introspection

  if (route === 'admin') {
    if (acr !== ADMIN_ACR) {
      // RFC 9470: the token is fine, the login behind it is not strong enough for this.
      res.setHeader(
        'www-authenticate',
        `${scheme} error="insufficient_user_authentication", error_description="A second factor is required", acr_values="${ADMIN_ACR}"`
      )
      return sendJson(res, 401, {
        error: 'insufficient_user_authentication',
        message: 'a second factor is required',
      })
    }
    return sendJson(res, 200, {
      message: `Welcome to the admin area, ${sub}.`,
      sub,
      acr,
      auth_time: introspection.auth_time,
      time: new Date().toISOString(),
    })
  }

  if (route === 'ticker') return sendTicker(req, res, url, sub ?? 'client')

  if (route === 'hello') {
    return sendJson(res, 200, {
      message: `Hello, ${sub ?? 'client'}!`,
      sub,
      iss,
      scope,
      time: new Date().toISOString(),
    })
  }
  const body = await readBody(req)
  const headers = Object.fromEntries(
    Object.entries(req.headers).filter(([name]) => !CREDENTIAL_HEADERS.has(name))
  )
  sendJson(res, 200, {
    method: req.method,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers,
    body,
    sub,
    // What the token said about itself once validated, never the token or any part of it.
    token: {
      scheme,
      active: true,
      iss,
      sub,
      scope,
      client_id: introspection.client_id,
      exp: introspection.exp,
    },
  })
}

async function readBody(req: IncomingMessage): Promise<string> {
  let body = ''
  req.setEncoding('utf8')
  for await (const chunk of req) body += chunk
  return body
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const json = JSON.stringify(value)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(json),
  })
  res.end(json)
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()))
    server.closeAllConnections()
  })
}
