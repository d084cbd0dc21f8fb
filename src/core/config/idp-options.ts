/**
 * The rules of the IdPs' options: the single IdP of the top-level options (`issuer`, `clientId`,
 * …) or each entry of `idps`, resolved to `IdpConfig`s; and a route's `idps` checked against them.
 * Part of resolve.ts's rules, reported the same way.
 */
import { clientKeysOf, type ClientKey } from './client-key.ts'
import type { ClientAuthMethod, IdpConfig, SecurityProfile } from './options.ts'
import { keyProblem, profileDefaults, profileProblems, PROFILES } from './profile.ts'
import type { OptionsInput } from './resolve.ts'
import { parseUrl, type Report } from './routes.ts'
import { IDP_NAME } from './schema.ts'
import { isLoopback, oneOf, requiredText, urlText } from './values.ts'

/** The options one IdP has: top-level for the single IdP, or in each entry of `idps`. */
export const IDP_KEYS = [
  'issuer',
  'clientId',
  'clientSecret',
  'clientAuth',
  'clientKey',
  'par',
  'dpop',
  'profile',
  'scopes',
  'claims',
] as const
/** What an entry of `idps` may hold. */
const IDP_ENTRY_KEYS: ReadonlySet<string> = new Set([...IDP_KEYS, 'label'])
const MAX_LABEL_LENGTH = 100

const DEFAULT_SCOPES = 'openid profile email offline_access'
const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = [
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
]

/**
 * The IdPs: each entry of `idps`, or the single IdP of the top-level options (named `idpName`,
 * served at `/bff/callback`). Undefined when anything was wrong.
 */
export function idpsOf(input: OptionsInput, bad: Report): IdpConfig[] | undefined {
  if (input.idps === undefined) {
    const name = input.idpName ?? 'default'
    const nameOk = typeof name === 'string' && IDP_NAME.test(name)
    if (!nameOk) bad(['idpName'], 'must be 1-64 letters, digits, "-" or "_"')
    const idp = idpOf(input, String(name), [], bad)
    if (!idp || !nameOk) return undefined
    return [{ ...idp, callbackPath: '/bff/callback', backchannelPath: '/bff/backchannel' }]
  }
  // One way to name the IdPs: a top-level key next to `idps` would be silently ignored.
  for (const key of [...IDP_KEYS, 'idpName'] as const) {
    if (input[key] !== undefined) bad([key], 'and "idps" are both set: keep one')
  }
  const entries = input.idps
  if (typeof entries !== 'object' || entries === null || Array.isArray(entries)) {
    bad(['idps'], 'must be an object of IdPs by name')
    return undefined
  }
  const names = Object.keys(entries)
  if (names.length === 0) {
    bad(['idps'], 'must name an IdP')
    return undefined
  }
  let ok = true
  const idps: IdpConfig[] = []
  for (const name of names) {
    const entry = (entries as Record<string, unknown>)[name]
    if (!IDP_NAME.test(name)) {
      bad(['idps', name], 'is not a usable IdP name: 1-64 letters, digits, "-" or "_"')
      ok = false
      continue
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      bad(['idps', name], 'must be an object with issuer, clientId and clientSecret')
      ok = false
      continue
    }
    for (const key of Object.keys(entry)) {
      if (!IDP_ENTRY_KEYS.has(key)) {
        bad(['idps', name, key], 'is not a known option')
        ok = false
      }
    }
    const idp = idpOf(entry as OptionsInput & { label?: unknown }, name, ['idps', name], bad)
    if (!idp) ok = false
    else {
      idps.push({
        ...idp,
        callbackPath: `/bff/callback/${name}`,
        backchannelPath: `/bff/backchannel/${name}`,
      })
    }
  }
  return ok ? idps : undefined
}

/** One IdP's options checked, each problem reported under `path` + its key. */
function idpOf(
  input: OptionsInput & { label?: unknown },
  name: string,
  path: readonly (string | number)[],
  report: Report
): Omit<IdpConfig, 'callbackPath' | 'backchannelPath'> | undefined {
  let ok = true
  const bad: Report = (keys, why) => {
    ok = false
    report([...path, ...keys], why)
  }
  const at =
    (key: string) =>
    (why: string): void =>
      bad([key], why)
  const issuer = parseUrl(urlText(input.issuer), at('issuer'), { required: true })
  // Tokens and codes travel to the issuer: plain http is only acceptable on this machine.
  if (issuer && issuer.protocol === 'http:' && !isLoopback(issuer.hostname)) {
    bad(['issuer'], `must use https (http is allowed only on localhost), got "${issuer.href}"`)
  }
  const clientId = requiredText(
    input.clientId,
    at('clientId'),
    'the client id registered at the IdP'
  )
  // A profile sets the defaults of what it governs, and refuses settings that break it.
  const profile =
    input.profile === undefined
      ? undefined
      : oneOf<SecurityProfile | 'none'>(input.profile, 'none', PROFILES, at('profile'))
  const fapi = profile === 'none' ? undefined : profile
  const defaults = profileDefaults(fapi)
  const broken = profileProblems(fapi, input)
  for (const [key, why] of broken) bad([key], why)
  const clientAuth = oneOf(
    input.clientAuth,
    defaults.clientAuth,
    CLIENT_AUTH_METHODS,
    at('clientAuth')
  )
  // Said once: a secret the profile refuses is not also "both set" with private_key_jwt. With a
  // mistyped profile, which credentials it would have needed is unknown: they wait for the fix.
  const secretRefused = broken.some(([key]) => key === 'clientSecret')
  const { clientSecret, clientKey } =
    profile === 'none'
      ? {}
      : clientCredentialsOf(
          secretRefused ? { ...input, clientSecret: undefined } : input,
          fapi ? 'private_key_jwt' : clientAuth,
          bad
        )
  const weakKey = keyProblem(fapi, clientKey)
  if (weakKey) bad(['clientKey'], weakKey)
  const par = input.par ?? defaults.par
  if (typeof par !== 'boolean') bad(['par'], 'must be true or false')
  const dpop = input.dpop ?? defaults.dpop
  if (typeof dpop !== 'boolean') bad(['dpop'], 'must be true or false')
  const scopes = scopesOf(input.scopes, at('scopes'))
  const claims = claimsOf(input.claims, bad)
  const label = input.label ?? name
  if (typeof label !== 'string' || !label.trim() || label.length > MAX_LABEL_LENGTH) {
    bad(['label'], `must be a non-empty string of at most ${MAX_LABEL_LENGTH} characters`)
  }
  if (!ok) return undefined
  return {
    name,
    label: (label as string).trim(),
    issuer: issuer!,
    clientId,
    clientSecret,
    clientAuth,
    ...(clientKey ? { clientKey: Object.freeze(clientKey) } : {}),
    par: par as boolean,
    dpop: dpop as boolean,
    ...(fapi ? { profile: fapi } : {}),
    scopes,
    claims,
  }
}

/**
 * The secret, or with `private_key_jwt` the key(s): each method needs its own credential and
 * refuses the other's, since a secret left next to a key would suggest it is still in use.
 */
function clientCredentialsOf(
  input: OptionsInput,
  clientAuth: ClientAuthMethod,
  bad: Report
): { clientSecret?: string; clientKey?: ClientKey[] } {
  if (clientAuth !== 'private_key_jwt') {
    if (input.clientKey !== undefined) {
      bad(['clientKey'], `is only used with "clientAuth": "private_key_jwt", not ${clientAuth}`)
    }
    const clientSecret = requiredText(
      input.clientSecret,
      (why) => bad(['clientSecret'], why),
      'the client secret registered at the IdP'
    )
    return { clientSecret }
  }
  if (input.clientSecret !== undefined) {
    bad(['clientSecret'], 'and "clientAuth": "private_key_jwt" are both set: keep clientKey only')
  }
  if (input.clientKey === undefined) {
    bad(
      ['clientKey'],
      'is required with "clientAuth": "private_key_jwt": the private key (JWK or PKCS#8 PEM)'
    )
    return {}
  }
  return { clientKey: clientKeysOf(input.clientKey, (why) => bad(['clientKey'], why)) }
}

/** A route's `idps` may only name configured IdPs: a typo would refuse every user for good. */
export function checkRouteIdps(routes: unknown, names: readonly string[], bad: Report) {
  if (!Array.isArray(routes)) return
  routes.forEach((route: unknown, i) => {
    const idps = (route as { idps?: unknown } | null)?.idps
    if (!Array.isArray(idps)) return
    const unknown = idps.filter((name) => typeof name === 'string' && !names.includes(name))
    if (unknown.length) {
      bad(
        ['routes', i, 'idps'],
        `names IdPs that are not configured: ${unknown.join(', ')} (configured: ${names.join(', ')})`
      )
    }
  })
}

/** The claims map: normalised name -> a dot path (no empty segment), frozen. */
function claimsOf(value: unknown, bad: Report): Readonly<Record<string, string>> {
  if (value === undefined) return Object.freeze({})
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    bad(['claims'], 'must be an object of claim name -> dot path')
    return Object.freeze({})
  }
  const claims: Record<string, string> = {}
  for (const [name, path] of Object.entries(value)) {
    // "__proto__" would set the object's prototype rather than a key.
    if (!name.trim() || name === '__proto__') bad(['claims', name], 'is not a usable claim name')
    else if (typeof path !== 'string' || !path || path.split('.').some((part) => part === '')) {
      bad(['claims', name], 'must be a dot path into the claims, e.g. "realm_access.roles"')
    } else claims[name] = path
  }
  return Object.freeze(claims)
}

/** Space-separated, `openid` among them; a list is joined. */
function scopesOf(value: unknown, bad: (why: string) => void): string {
  if (
    value !== undefined &&
    typeof value !== 'string' &&
    !(Array.isArray(value) && value.every((s) => typeof s === 'string'))
  ) {
    bad('must be a string or an array of strings')
    return DEFAULT_SCOPES
  }
  const text = Array.isArray(value) ? value.join(' ') : (value as string | undefined)
  const scopes = (text?.trim() || DEFAULT_SCOPES).replace(/\s+/g, ' ')
  if (!scopes.split(' ').includes('openid')) bad(`must include "openid", got "${scopes}"`)
  return scopes
}
