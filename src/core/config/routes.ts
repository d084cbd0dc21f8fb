/**
 * API routes from settings: `BFF_API`'s `prefix=upstream` pairs and the config file's `routes`, by
 * one set of rules (a plain prefix outside /bff, an http(s) upstream without credentials, query or
 * fragment, no prefix twice), sorted longest prefix first.
 */
import type { ApiRoute } from './env.ts'
import { jsonPath } from './file.ts'

export type Report = (name: string, why: string) => void

export function parseUrl(
  raw: string | undefined,
  name: string,
  bad: Report,
  opts: { required: boolean }
) {
  if (!raw) {
    if (opts.required) bad(name, 'is required')
    return undefined
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    bad(name, `must be an absolute http(s) URL, got "${raw}"`)
    return undefined
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    bad(name, `must use http or https, got "${url.protocol}"`)
    return undefined
  }
  if (url.username || url.password) {
    bad(name, 'must not carry credentials')
    return undefined
  }
  return url
}

/** `BFF_API`: comma-separated `prefix=upstream` pairs, e.g. `/api/=http://127.0.0.1:4000/`. */
export function parseApiRoutes(raw: string | undefined, bad: Report): ApiRoute[] {
  if (!raw) return []
  const routes: ApiRoute[] = []
  for (const entry of raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const at = entry.indexOf('=')
    const prefixRaw = at > 0 ? entry.slice(0, at).trim() : ''
    const upstreamRaw = at > 0 ? entry.slice(at + 1).trim() : ''
    if (!prefixRaw || !upstreamRaw) {
      bad('BFF_API', `entry "${entry}" must look like /prefix/=https://upstream.example/`)
      continue
    }
    const route = parseRoute(prefixRaw, upstreamRaw, routes, (_key, why) => bad('BFF_API', why))
    if (route) routes.push(route)
  }
  return sortRoutes(routes)
}

/** The file's `routes`, by the same rules as `BFF_API`, each problem naming its JSON path. */
export function fileRoutes(
  entries: ReadonlyArray<{ prefix: string; upstream: string }>,
  bad: Report
) {
  const routes: ApiRoute[] = []
  entries.forEach((entry, i) => {
    const route = parseRoute(entry.prefix.trim(), entry.upstream.trim(), routes, (key, why) =>
      bad(`BFF_CONFIG ${jsonPath(['routes', i, key])}:`, why)
    )
    if (route) routes.push(route)
  })
  return sortRoutes(routes)
}

/** One route's rules, shared by `BFF_API` and the file; `bad` gets the key at fault. */
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
  const upstream = parseUrl(upstreamRaw, '', (_name, why) => bad('upstream', why), {
    required: true,
  })
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

/** Longest prefix first, so "/api/v2/" wins over "/api/". */
function sortRoutes(routes: ApiRoute[]): ApiRoute[] {
  return routes.sort((a, b) => b.prefix.length - a.prefix.length)
}
