/**
 * iron's seal text (`Fe26.2*<password id>*<salt>*<iv>*<data>*<expiration>*<MAC salt>*<MAC>~2`),
 * read and written without any cryptography. The two implementations of the format, WebCrypto's
 * (web-iron.ts) and node:crypto's (src/adapters/node/crypto.ts), share it so that what is checked
 * before any key is derived is written once. Both open a seal in the same order: these checks,
 * then the MAC over `macBase` compared in constant time, and only then a decryption.
 *
 * On the hot path (every request that misses the sealer's cache) nothing here copies: the parts
 * are the one array `split` makes, and the MAC's text is a slice of the sealed text.
 */

const PREFIX = 'Fe26.2'
/** iron-session's current token version, after `~`: its seals carry the data as it is. */
export const VERSION = 2
/** iron's allowance for clock skew past a seal's own expiration. */
const SKEW_MS = 60_000
const DIGITS = /^\d+$/

/** A seal's eight parts, as its text (before the first `~`) splits on `*`. */
export type SealParts = [
  prefix: string,
  id: string,
  salt: string,
  iv: string,
  encrypted: string,
  expiration: string,
  hmacSalt: string,
  hmac: string,
]

/**
 * The parts of `sealed` if iron would go on to its password: null where iron-session answers `{}`
 * (not eight parts, expired), the message of the error it throws where it throws (another
 * prefix, an expiration that is not a number). In iron's order, which decides between the two.
 */
export function sealParts(sealed: string): SealParts | null | string {
  // iron-session: the text before the first `~` is the seal, the rest its version.
  const tilde = sealed.indexOf('~')
  const parts = (tilde === -1 ? sealed : sealed.slice(0, tilde)).split('*')
  if (parts.length !== 8) return null
  if (parts[0] !== PREFIX) return 'Wrong mac prefix'
  const expiration = parts[5]!
  if (expiration) {
    if (!DIGITS.test(expiration)) return 'Invalid expiration'
    if (Number.parseInt(expiration, 10) <= Date.now() - SKEW_MS) return null
  }
  return parts as SealParts
}

/**
 * The password `parts` name (`default` when they name none): undefined for an id not in
 * `passwords`, null for a name they only inherit (`constructor`: iron-session finds it, then
 * throws as on an empty password). Own names only ever answer a password.
 */
export function sealPassword(
  passwords: Record<string, string>,
  parts: SealParts
): string | null | undefined {
  const id = parts[1] || 'default'
  if (Object.hasOwn(passwords, id)) return passwords[id]
  return id in passwords ? null : undefined
}

/** Where the MAC's text ends in the sealed text: after the sixth part and five `*`. */
function baseEnd(parts: SealParts): number {
  let end = 5
  for (let i = 0; i < 6; i++) end += parts[i]!.length
  return end
}

/** What the MAC covers: the sealed text up to its MAC salt, sliced rather than joined again. */
export const macBase = (sealed: string, parts: SealParts): string => sealed.slice(0, baseEnd(parts))

/** The text after the seal's first `~` (its version, and whatever follows), if it has one. */
export function versionText(sealed: string, parts: SealParts): string | undefined {
  const tilde = baseEnd(parts) + parts[6].length + parts[7].length + 2
  return tilde < sealed.length ? sealed.slice(tilde + 1) : undefined
}

/**
 * The sealed text up to its MAC salt, in iron's order: base64url `iv` and `encrypted`, the
 * expiration `ttlSeconds` from now (none for 0).
 */
export function sealBase(
  id: string,
  salt: string,
  iv: string,
  encrypted: string,
  ttlSeconds: number
): string {
  const expiration = ttlSeconds ? String(Date.now() + ttlSeconds * 1000) : ''
  return `${PREFIX}*${id}*${salt}*${iv}*${encrypted}*${expiration}`
}

/** The whole sealed text: `base`, its MAC salt and base64url MAC, and iron-session's version. */
export const sealText = (base: string, hmacSalt: string, mac: string): string =>
  `${base}*${hmacSalt}*${mac}~${VERSION}`
