/**
 * A route's policy keys (DESIGN.md "Route policies"), checked once at start-up whatever wrote them
 * (options, the config file): each problem names the route and the key, e.g.
 * `"routes[2].token" must be one of user, optional, none, client, exchange`.
 */
import type { ApiRoute, ClaimRequirement, TokenMode } from './options.ts'
import { parseUrl, type Path } from './routes.ts'

type Policy = Omit<ApiRoute, 'prefix' | 'upstream'>

export const ROUTE_KEYS = new Set([
  'prefix',
  'upstream',
  'methods',
  'token',
  'idps',
  'require',
  'scopes',
  'acr',
  'maxAge',
  'resource',
  'websocket',
  'authorize',
  'tls',
])

const TOKEN_MODES: readonly TokenMode[] = ['user', 'optional', 'none', 'client', 'exchange']

/**
 * Never proxied, whatever a route says: TRACE echoes the request (cookies, tokens), CONNECT opens a
 * tunnel, and WebDAV methods reach code an API was not built to guard.
 */
const NEVER_METHODS = new Set([
  'TRACE',
  'TRACK',
  'CONNECT',
  'PROPFIND',
  'PROPPATCH',
  'MKCOL',
  'COPY',
  'MOVE',
  'LOCK',
  'UNLOCK',
  'SEARCH',
])
const METHOD_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

const isStringList = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === 'string' && item.trim() !== '')

/** The policy of one route entry; `bad` gets the key at fault (a path below the route). */
export function checkPolicy(
  entry: Record<string, unknown>,
  bad: (path: Path, why: string) => void
): Policy {
  const policy: Policy = {}
  for (const key of Object.keys(entry)) {
    if (!ROUTE_KEYS.has(key)) bad([key], `is not a route key (${[...ROUTE_KEYS].join(', ')})`)
  }
  const { token, idps, require, scopes, acr, maxAge, resource, websocket } = entry
  // A resolved route (a Config given to createBff again) holds its methods as a Set.
  const methods = entry.methods instanceof Set ? [...entry.methods] : entry.methods

  if (methods !== undefined) {
    if (!isStringList(methods) || methods.length === 0) {
      bad(['methods'], 'must be a non-empty array of method names')
    } else {
      const never = methods.filter((m) => NEVER_METHODS.has(m.toUpperCase()))
      const malformed = methods.filter((m) => !METHOD_TOKEN.test(m))
      if (never.length) bad(['methods'], `must not allow ${never.join(', ')}: never proxied`)
      else if (malformed.length)
        bad(['methods'], `has invalid method names: ${malformed.join(', ')}`)
      // Methods are case-sensitive (RFC 9110 9.1); the usual ones are written in capitals.
      else policy.methods = new Set(methods)
    }
  }

  if (token !== undefined) {
    if (typeof token !== 'string' || !TOKEN_MODES.includes(token as TokenMode)) {
      bad(['token'], `must be one of ${TOKEN_MODES.join(', ')}`)
    } else policy.token = token as TokenMode
  }

  if (idps !== undefined) {
    if (!isStringList(idps) || idps.length === 0)
      bad(['idps'], 'must be a non-empty array of IdP names')
    else policy.idps = [...idps]
  }

  if (require !== undefined) {
    if (typeof require !== 'object' || require === null || Array.isArray(require)) {
      bad(['require'], 'must be an object of claim name -> required value')
    } else {
      const checked: Record<string, ClaimRequirement> = {}
      for (const [claim, value] of Object.entries(require)) {
        const one = (v: unknown) => typeof v === 'string' || typeof v === 'boolean'
        if (claim === '__proto__') {
          // Assigned, it would set the object's prototype: the requirement would vanish.
          bad(['require', claim], 'is not a usable claim name')
        } else if (one(value) || (Array.isArray(value) && value.length > 0 && value.every(one))) {
          checked[claim] = value as ClaimRequirement
        } else {
          bad(['require', claim], 'must be a string, a boolean or a non-empty array of them')
        }
      }
      policy.require = checked
    }
  }

  if (scopes !== undefined) {
    if (!isStringList(scopes) || scopes.some((scope) => /\s/.test(scope))) {
      bad(['scopes'], 'must be an array of scope names (no spaces)')
    } else policy.scopes = [...scopes]
  }

  if (acr !== undefined) {
    if (typeof acr === 'string' && acr.trim()) policy.acr = [acr]
    else if (isStringList(acr) && acr.length > 0) policy.acr = [...acr]
    else bad(['acr'], 'must be an acr value or a non-empty array of them')
  }

  if (maxAge !== undefined) {
    if (typeof maxAge !== 'number' || !Number.isInteger(maxAge) || maxAge < 0) {
      bad(['maxAge'], 'must be a whole number of seconds, 0 or more')
    } else policy.maxAge = maxAge
  }

  if (resource !== undefined) {
    // RFC 8707 2: an absolute URI without a fragment.
    let ok = false
    if (typeof resource === 'string') {
      try {
        ok = !new URL(resource).hash && !resource.includes('#')
      } catch {
        ok = false
      }
    }
    if (ok) policy.resource = resource as string
    else bad(['resource'], 'must be an absolute URI without a fragment')
  }

  if (websocket !== undefined) {
    if (typeof websocket !== 'boolean') bad(['websocket'], 'must be true or false')
    else policy.websocket = websocket
  }

  checkAuthorize(entry.authorize, policy, bad)
  checkTls(entry.tls, policy, bad)

  // As written, so a mode written wrong still gets the other problems reported (as `user`).
  const mode = TOKEN_MODES.includes(token as TokenMode) ? (token as TokenMode) : 'user'
  if (mode === 'exchange' && resource === undefined) {
    bad(['resource'], 'is required with token "exchange" (the resource the token is exchanged for)')
  }
  if ((mode === 'none' || mode === 'client') && (policy.require || policy.idps || policy.acr)) {
    bad(['token'], `"${mode}" has no user: "require", "idps" and "acr" need a user token mode`)
  }
  if ((mode === 'none' || mode === 'client') && policy.maxAge !== undefined) {
    bad(['maxAge'], `needs a user: token "${mode}" has no session`)
  }
  if (mode === 'none' && policy.scopes) bad(['scopes'], 'means nothing with token "none"')
  if (mode === 'none' && resource !== undefined) {
    bad(['resource'], 'means nothing with token "none": no token is sent')
  }
  return policy
}

function checkAuthorize(value: unknown, policy: Policy, bad: (path: Path, why: string) => void) {
  if (value === undefined) return
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    bad(['authorize'], 'must be an object { url, cacheSeconds }')
    return
  }
  const { url, cacheSeconds, ...rest } = value as Record<string, unknown>
  for (const key of Object.keys(rest))
    bad(['authorize', key], 'is not a key of authorize (url, cacheSeconds)')
  const text = url instanceof URL ? url.href : url
  const parsed = parseUrl(
    typeof text === 'string' ? text : undefined,
    (why) => bad(['authorize', 'url'], why),
    {
      required: true,
    }
  )
  if (
    cacheSeconds !== undefined &&
    (typeof cacheSeconds !== 'number' || !Number.isInteger(cacheSeconds) || cacheSeconds < 0)
  ) {
    bad(['authorize', 'cacheSeconds'], 'must be a whole number of seconds, 0 or more')
    return
  }
  if (parsed)
    policy.authorize = { url: parsed, cacheSeconds: (cacheSeconds as number | undefined) ?? 0 }
}

function checkTls(value: unknown, policy: Policy, bad: (path: Path, why: string) => void) {
  if (value === undefined) return
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    bad(['tls'], 'must be an object { cert, key, ca } or { binding }')
    return
  }
  const tls = value as Record<string, unknown>
  const keys = ['cert', 'key', 'ca', 'binding']
  for (const key of Object.keys(tls)) {
    if (!keys.includes(key)) bad(['tls', key], `is not a key of tls (${keys.join(', ')})`)
  }
  for (const key of keys) {
    if (tls[key] !== undefined && (typeof tls[key] !== 'string' || !(tls[key] as string).trim())) {
      bad(['tls', key], 'must be a non-empty string')
    }
  }
  if (tls.binding === undefined && (tls.cert === undefined) !== (tls.key === undefined)) {
    bad(['tls'], 'needs both "cert" and "key" (PEM), or a Workers "binding"')
  } else if (keys.every((key) => tls[key] === undefined)) {
    bad(['tls'], 'needs "cert" and "key" (PEM), "ca", or a Workers "binding"')
  }
  policy.tls = Object.fromEntries(
    keys.filter((k) => typeof tls[k] === 'string').map((k) => [k, tls[k]])
  )
}
