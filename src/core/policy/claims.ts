/**
 * Normalised claims: each IdP names the same fact its own way (Keycloak's `realm_access.roles`,
 * Entra's `roles`, Okta's `groups`), so the config maps a name the routes use to a dot path into
 * the session's claims. A name without a mapping is the claim of that name. Routes' `require` is
 * matched against these values, here and nowhere else.
 */
import type { ClaimRequirement } from '../config/options.ts'

/**
 * The value at `path` in `claims`: `a.b` is `claims.a.b`. A key that itself contains dots (the
 * namespaced claims of Auth0, `https://example.com/roles`) is found too: at each level the longest
 * key that matches the path wins. Only own properties count, so `constructor` or `__proto__` never
 * reach the prototype.
 */
export function claimAt(claims: unknown, path: string): unknown {
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return undefined
  const object = claims as Record<string, unknown>
  if (Object.hasOwn(object, path)) return object[path]
  for (let dot = path.lastIndexOf('.'); dot > 0; dot = path.lastIndexOf('.', dot - 1)) {
    const head = path.slice(0, dot)
    if (!Object.hasOwn(object, head)) continue
    const found = claimAt(object[head], path.slice(dot + 1))
    if (found !== undefined) return found
  }
  return undefined
}

/** The value of normalised claim `name`: through the IdP's mapping, else the claim itself. */
export function normalisedClaim(
  claims: Record<string, unknown>,
  name: string,
  mapping: Readonly<Record<string, string>>
): unknown {
  if (Object.hasOwn(mapping, name)) return claimAt(claims, mapping[name]!)
  return Object.hasOwn(claims, name) ? claims[name] : undefined
}

/**
 * Whether a claim's value meets a requirement: a string or boolean equals the claim, or is one of
 * its values when the claim is an array; an array requirement is met by any of its values. Types
 * are never converted: `"true"` is not `true`, `"1"` not `1`. A missing claim meets nothing.
 */
export function claimMatches(value: unknown, required: ClaimRequirement): boolean {
  const wanted: readonly (string | boolean)[] = Array.isArray(required) ? required : [required]
  if (Array.isArray(value)) return wanted.some((one) => value.includes(one))
  return wanted.some((one) => value === one)
}

/** The names of `require` the session's claims do not meet (empty: all met). */
export function unmetClaims(
  claims: Record<string, unknown>,
  require: Readonly<Record<string, ClaimRequirement>>,
  mapping: Readonly<Record<string, string>>
): string[] {
  return Object.entries(require)
    .filter(([name, wanted]) => !claimMatches(normalisedClaim(claims, name, mapping), wanted))
    .map(([name]) => name)
}

/** Each mapped claim's value, for `/bff/user`; names whose path leads nowhere are left out. */
export function mappedClaims(
  claims: Record<string, unknown>,
  mapping: Readonly<Record<string, string>>
): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [name, path] of Object.entries(mapping)) {
    const value = claimAt(claims, path)
    if (value !== undefined) out[name] = value
  }
  return out
}
