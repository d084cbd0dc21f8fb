/**
 * The audit trail: one JSON line per security event, `"audit": true` and `event` from a closed
 * list, written through the app's `Logger` so Node and Workers print it alike. The line answers
 * "who did what when, from where": the subject and session as hashes, the IdP, the client's
 * address, the route (a configured prefix or a registered `/bff/` path, never a request path or
 * query) and a reason that is a code. What is passed in is raw (a `Session`, a `sub`); hashing
 * and narrowing happen here, so a caller cannot put a session id, a subject or free text in the
 * trail by mistake. docs/audit.md describes each event.
 */
import type { Context } from 'hono'
import type { ApiRoute } from '../config/options.ts'
import { matchRoute, requestPath } from '../proxy/forward.ts'
import type { Session } from '../session/types.ts'
import { subjectHash, type Logger, type LogLevel } from './log.ts'

/** Every event the trail has (DESIGN "Observability"); docs/audit.md describes each. */
export const AUDIT_EVENTS = [
  'login',
  'login_failed',
  'logout',
  'backchannel_logout',
  'admin_revoke',
  'session_expired',
  'refresh_failed',
  'csrf_rejected',
  'policy_denied',
  'step_up',
] as const
export type AuditEvent = (typeof AUDIT_EVENTS)[number]

/** Refusals and failures are warnings; the rest is the ordinary life of a session. */
const LEVELS: Record<AuditEvent, LogLevel> = {
  login: 'info',
  login_failed: 'warn',
  logout: 'info',
  backchannel_logout: 'info',
  admin_revoke: 'info',
  session_expired: 'info',
  refresh_failed: 'warn',
  csrf_rejected: 'warn',
  policy_denied: 'warn',
  step_up: 'info',
}

export interface AuditFields {
  /**
   * The session the event is about: its subject, IdP and id go in, each hashed but the IdP. A
   * session known by its id only (an expired one's cookie, with a server store) has no subject.
   */
  session?: (Pick<Session, 'id'> & Partial<Pick<Session, 'sub' | 'idp'>>) | null
  /** The subject, raw, when there is no session (back-channel, admin): hashed here. */
  sub?: string
  /** The IdP's configured name, when there is no session to take it from. */
  idp?: string
  /** A configured prefix or a `/bff/` path. Default: the one the request matched. */
  route?: string
  /** A code (`invalid_grant`, `missing_header`): anything else is written as `other`. */
  reason?: string
  /** Which check of a route refused (`idps`, `scopes`, `authorize`, …). */
  check?: string
  /** Sessions ended (back-channel logout, admin revocation). */
  count?: number
  /** The authentication level the new login reached (`step_up`). */
  acr?: unknown
}

/**
 * Writes one audit line; resolves once it is written. Without a request (`c` undefined: a timer
 * found a session expired), the line has no client address and only the route given in `fields`.
 */
export type Audit = (
  c: Context | undefined,
  event: AuditEvent,
  fields?: AuditFields
) => Promise<void>

export interface AuditOptions {
  log: Logger
  /** The client's address as the runtime sees it (Node: the socket; Workers: CF-Connecting-IP). */
  clientIp: (c: Context) => string | undefined
  /** The proxy's routes, to name the one a request matched by its prefix. */
  api: readonly ApiRoute[]
}

// Codes are short lower-case words; a reason that is not one (a quote of an answer, a message)
// never reaches the trail.
const CODE = /^[a-z][a-z0-9_]{0,63}$/
// acr values are short tokens or URIs (`mfa`, `urn:mace:incommon:iap:silver`).
const ACR = /^[\w.:/-]{1,128}$/
// Registered BFF paths are fixed text: no parameters, wildcards or query.
const ENDPOINT_PATH = /^\/bff\/[\w/-]{0,128}$/

export function auditTrail(options: AuditOptions): Audit {
  const { log, clientIp, api } = options
  return async function audit(c, event, fields = {}) {
    const { session } = fields
    const sub = session?.sub ?? fields.sub
    log(LEVELS[event], event, {
      audit: true,
      sub: sub === undefined ? undefined : await subjectHash(sub),
      idp: session?.idp ?? fields.idp,
      session: session ? await sessionHash(session.id) : undefined,
      ip: c ? clientIp(c) : undefined,
      route: fields.route ?? (c ? routeOf(c, api) : undefined),
      reason: fields.reason === undefined ? undefined : codeOrOther(fields.reason),
      check: fields.check,
      count: fields.count,
      acr: typeof fields.acr === 'string' && ACR.test(fields.acr) ? fields.acr : undefined,
    })
  }
}

/**
 * A handle on one session for the trail: the first 16 hex digits of SHA-256 of a label and the
 * id. The id is 256 random bits, so the handle cannot be turned back into it, and the label keeps
 * it from ever equalling a subject hash.
 */
export function sessionHash(id: string): Promise<string> {
  return subjectHash(`session:${id}`)
}

export function codeOrOther(reason: string): string {
  return CODE.test(reason) ? reason : 'other'
}

/** The route prefix the request falls under, or the registered `/bff/` path of its handler. */
function routeOf(c: Context, api: readonly ApiRoute[]): string | undefined {
  const prefix = matchRoute(api, requestPath(c.req.url).pathname)?.prefix
  if (prefix) return prefix
  const registered = c.req.routePath
  return ENDPOINT_PATH.test(registered) ? registered : undefined
}

// OAuth token endpoint errors (RFC 6749 5.2): the only words of an IdP's refusal the trail keeps.
const TOKEN_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
])

/**
 * Why a refresh failed, as a code: the IdP's OAuth error when it is a standard one
 * (`invalid_grant`), `refused_http_<status>` for a refusal without one, else the BFF's error code
 * (`idp_unavailable`, `idp_timeout`). `reason` is the log's `errorReason` of the cause
 * (`ResponseBodyError:invalid_grant`), which the Workers' session objects carry across RPC.
 */
export function refreshReason(code: string, reason: string | undefined): string {
  const named = /^[A-Za-z]*Error:([\w.-]+)/.exec(reason ?? '')?.[1]
  if (named && (TOKEN_ERRORS.has(named) || /^refused_http_\d{3}$/.test(named))) return named
  return code
}
