/**
 * Proxy routes and URLs, by one set of rules for every source (options, `BFF_API`, the config
 * file's `routes`): a plain prefix outside /bff, an http(s) upstream without credentials, query or
 * fragment, no prefix twice; sorted longest prefix first.
 */
import type { ApiRoute } from './options.ts'
import { checkPolicy } from './route-policy.ts'

/** Where a problem is: an option and, inside it, an index or key, e.g. `['routes', 1, 'prefix']`. */
export type Path = readonly (string | number)[]
export type Report = (path: Path, why: string) => void

/** An absolute http(s) URL without credentials, or undefined after reporting why not. */
export function parseUrl(
  raw: string | undefined,
  bad: (why: string) => void,
  opts: { required: boolean }
): URL | undefined {
  if (!raw) {
    if (opts.required) bad('is required')
    return undefined
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    bad(`must be an absolute http(s) URL, got "${raw}"`)
    return undefined
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    bad(`must use http or https, got "${url.protocol}"`)
    return undefined
  }
  if (url.username || url.password) {
    bad('must not carry credentials')
    return undefined
  }
  return url
}

/** The `routes` option: each entry checked, problems at `['routes', index, key]`. */
export function checkRoutes(entries: unknown, bad: Report): ApiRoute[] {
  if (entries === undefined) return []
  if (!Array.isArray(entries)) {
    bad(['routes'], 'must be an array of { prefix, upstream }')
    return []
  }
  const routes: ApiRoute[] = []
  entries.forEach((entry: unknown, i) => {
    if (typeof entry !== 'object' || entry === null) {
      bad(['routes', i], 'must be an object { prefix, upstream }')
      return
    }
    const { prefix, upstream } = entry as { prefix?: unknown; upstream?: unknown }
    const upstreamText = upstream instanceof URL ? upstream.href : upstream
    if (typeof prefix !== 'string') bad(['routes', i, 'prefix'], 'must be a string')
    if (typeof upstreamText !== 'string')
      bad(['routes', i, 'upstream'], 'must be a URL or a string')
    if (typeof prefix !== 'string' || typeof upstreamText !== 'string') return
    const route = parseRoute(prefix.trim(), upstreamText.trim(), routes, (key, why) =>
      bad(['routes', i, key], why)
    )
    const policy = checkPolicy(entry as Record<string, unknown>, (path, why) =>
      bad(['routes', i, ...path], why)
    )
    if (route) routes.push(Object.freeze({ ...route, ...policy }))
  })
  // Longest prefix first, so "/api/v2/" wins over "/api/".
  return routes.sort((a, b) => b.prefix.length - a.prefix.length)
}

/** One route's rules; `bad` gets the key at fault. */
function parseRoute(
  prefixRaw: string,
  upstreamRaw: string,
  seen: readonly ApiRoute[],
  bad: (key: 'prefix' | 'upstream', why: string) => void
): ApiRoute | undefined {
  if (
    !/^\/[A-Za-z0-9._~\-/]*$/.test(prefixRaw) ||
    prefixRaw.startsWith('/bff') ||
    prefixRaw.includes('..')
  ) {
    bad('prefix', `prefix "${prefixRaw}" must be a plain path starting with "/" and not under /bff`)
    return undefined
  }
  const upstream = parseUrl(upstreamRaw, (why) => bad('upstream', why), { required: true })
  if (!upstream) return undefined
  if (upstream.search || upstream.hash) {
    bad('upstream', `upstream "${upstreamRaw}" must not have a query or fragment`)
    return undefined
  }
  // Normalise both sides to end with "/" so "/api" never matches "/apifoo".
  const prefix = prefixRaw.endsWith('/') ? prefixRaw : `${prefixRaw}/`
  if (!upstream.pathname.endsWith('/')) upstream.pathname += '/'
  if (seen.some((r) => r.prefix === prefix)) {
    bad('prefix', `prefix "${prefix}" appears twice`)
    return undefined
  }
  return Object.freeze({ prefix, upstream })
}
