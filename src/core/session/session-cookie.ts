/**
 * What the session cookie's value refers to. In `cookie` mode it is the sealed session itself
 * (iron, seal.ts). With a server store it names the session by its id, in the compact form
 * `<id>.<exp>.<grace>.<mac>`: the 256-bit random id (43 characters, base64url), the cookie's own
 * expiry (the session's, epoch seconds in base 36; an `F` after the grace when it is the absolute
 * lifetime's), the grace in which it still tells that its session expired (seconds, base 36, see
 * `EXPIRED_COOKIE_GRACE_SECONDS`), and a MAC of all that under the session secret (HMAC-SHA256, 128
 * bits, 22 characters): 77 bytes where a sealed id took ~340.
 *
 * Why nothing more is needed (README, "The session cookie"): the id is unguessable (256 bits from
 * the platform's CSPRNG), the cookie is `HttpOnly`, `Secure` and `SameSite=Strict` (`__Host-` on
 * https), and a session exists only while the store holds it (expiry, logout and revocation are
 * the store's). Encrypting the id would hide nothing: it is random, and tells nothing but itself.
 * The MAC adds what a bare id would lack: a forged or guessed value is refused before any store
 * lookup, the expiry cannot be moved, and the session secret keeps its meaning, so dropping a
 * secret from `BFF_SESSION_SECRET` ends the cookies made under it. A dump of the store yields ids
 * but no MACs; the secret yields MACs of no id: a live cookie needs both, as a sealed id did.
 *
 * Cookies of the older sealed form (`Fe26.2*…` holding `{ id }`) still open, and are written again
 * in the compact form the first time their session is used.
 */
import { unpackRef } from './packed-session.ts'
import type { SealOptions, Sealer } from './seal.ts'
import type { SessionRef } from './types.ts'
import { oldestFirst } from '../oldest-first.ts'

/** HMAC-SHA256 of `message` under `secret`: the runtime's fastest (Node: node:crypto). */
export type Hmac = (secret: string, message: string) => Uint8Array | Promise<Uint8Array>

/** A session cookie opened: what it refers to, and whether to write it again (`stale`). */
export interface OpenedCookie {
  ref: SessionRef
  /**
   * Made under an older secret, or in the older sealed form of an id: the next answer writes it
   * again, under the first secret and in the compact form.
   */
  stale: boolean
}

/** A cookie whose own expiry has passed, within its grace: what it held (see `Sealer.expired`). */
export interface ExpiredCookie {
  value: SessionRef
  /** Its expiry, epoch seconds. */
  exp: number
  /** The expiry was the session's absolute lifetime. */
  final: boolean
}

export interface SessionCookies {
  /**
   * The cookie value that names the server-side session `id` for `ttlSeconds` (and `options`'s
   * grace): the compact form under the first secret. An id that is not base64url (none the BFF
   * makes) is sealed instead.
   */
  idValue(id: string, ttlSeconds: number, options?: SealOptions): Promise<string>
  /**
   * What `value` refers to, or null when it is malformed, forged, expired or from an unknown
   * secret. `cache` as `Sealer.unseal`'s: the session cookie comes with every request.
   */
  open(value: string, options?: { cache?: boolean }): Promise<OpenedCookie | null>
  /** An authentic cookie whose own expiry has passed, within its grace; null for anything else. */
  expired(value: string): Promise<ExpiredCookie | null>
}

export interface SessionCookiesOptions {
  /** Default: WebCrypto's HMAC, the same on every runtime. */
  hmac?: Hmac
  /**
   * How many opened compact values to remember, so the MAC of a cookie seen before is not
   * computed again (a WebCrypto HMAC costs tens of microseconds; a lookup, well under one).
   * @default 10_000
   */
  cacheEntries?: number
  /** The clock (epoch milliseconds) that dates and checks the expiry: the app's. @default Date.now */
  now?: () => number
}

/** Ids the compact form carries: base64url, as the BFF makes them (43 characters, 256 bits). */
const ID = /^[\w-]{16,256}$/
/** `<id>.<exp>.<grace>[F].<mac>` (base 36 is lower case: `F` is no digit). Nothing else is read as the compact form. */
const COMPACT = /^([\w-]{16,256})\.([0-9a-z]{1,11})\.([0-9a-z]{1,11})(F?)\.([\w-]{22})$/
/** MAC bytes kept: 128 bits, as many as forging by trial would need. */
const MAC_BYTES = 16
/** The MAC's message: its purpose, so no other MAC under the same secret can stand in for it. */
const MAC_CONTEXT = 'bff-session-id.v2:'

/** A compact value read: the id, its expiry and grace end (epoch seconds), final or not. */
interface Compact {
  id: string
  exp: number
  graceEnd: number
  final: boolean
  /** The index of the secret whose MAC it carries. */
  secret: number
}

export function createSessionCookies(
  sealer: Sealer,
  secrets: readonly string[],
  options: SessionCookiesOptions = {}
): SessionCookies {
  if (secrets.length === 0) throw new Error('"secrets" must hold at least one secret')
  const hmac = options.hmac ?? webCryptoHmac(secrets)
  const maxEntries = options.cacheEntries ?? 10_000
  const now = options.now ?? Date.now
  // Value -> what it holds, once its MAC checked. Map order is recency order.
  const checked = new Map<string, Compact>()
  const oldestChecked = oldestFirst(checked)

  const macOf = async (secret: string, signed: string) =>
    base64url((await hmac(secret, MAC_CONTEXT + signed)).subarray(0, MAC_BYTES))

  /** The compact value read and its MAC checked, or null (not compact, or forged). */
  async function read(value: string, remember: boolean): Promise<Compact | null | undefined> {
    const known = checked.get(value)
    if (known) {
      checked.delete(value)
      checked.set(value, known)
      return known
    }
    const parts = COMPACT.exec(value)
    if (!parts) return undefined
    const [, id, exp, grace, final, mac] = parts as unknown as string[]
    const signed = value.slice(0, value.length - 23)
    let secret = -1
    for (let i = 0; i < secrets.length && secret === -1; i++) {
      if (sameText(await macOf(secrets[i]!, signed), mac!)) secret = i
    }
    if (secret === -1) return null
    const expiry = parseInt(exp!, 36)
    const found = {
      id: id!,
      exp: expiry,
      graceEnd: expiry + parseInt(grace!, 36),
      final: final === 'F',
      secret,
    }
    // Only values that opened are remembered: forgeries cannot push real ones out.
    if (remember && maxEntries > 0) {
      if (checked.size >= maxEntries) checked.delete(oldestChecked()![0])
      checked.set(value, found)
    }
    return found
  }

  return {
    async idValue(id, ttlSeconds, sealOptions = {}) {
      if (!ID.test(id)) return sealer.seal({ id }, ttlSeconds, sealOptions)
      const exp = Math.floor(now() / 1000) + ttlSeconds
      const grace = Math.max(0, Math.floor(sealOptions.graceSeconds ?? 0))
      const signed = `${id}.${exp.toString(36)}.${grace.toString(36)}${sealOptions.final ? 'F' : ''}`
      return `${signed}.${await macOf(secrets[0]!, signed)}`
    },

    async open(value, opening) {
      const compact = await read(value, opening?.cache === true)
      if (compact === undefined) {
        const ref = unpacked(await sealer.unseal<object>(value, opening))
        if (!ref) return null
        return { ref, stale: 'id' in ref || (await sealer.isStale(value)) }
      }
      if (!compact || compact.exp <= now() / 1000) return null
      return { ref: { id: compact.id }, stale: compact.secret > 0 }
    },

    async expired(value) {
      const compact = await read(value, false)
      if (compact === undefined) return sealedExpired(sealer, value)
      const t = now() / 1000
      if (!compact || compact.exp > t || compact.graceEnd <= t) return null
      return { value: { id: compact.id }, exp: compact.exp, final: compact.final }
    },
  }
}

/** `Sealer.expired`, its value unpacked (packed-session.ts). */
async function sealedExpired(sealer: Sealer, value: string): Promise<ExpiredCookie | null> {
  const gone = await sealer.expired<object>(value)
  const ref = gone ? unpackRef(gone.value) : null
  return gone && ref ? { value: ref, exp: gone.exp, final: gone.final } : null
}

/**
 * Session cookies as they were before the compact form: every ref sealed. For a session manager
 * built without secrets of its own (tests, a host app's own wiring).
 */
export function sealedSessionCookies(sealer: Sealer): SessionCookies {
  return {
    idValue: (id, ttlSeconds, sealOptions) => sealer.seal({ id }, ttlSeconds, sealOptions),
    async open(value, read) {
      const ref = unpacked(await sealer.unseal<object>(value, read))
      return ref ? { ref, stale: await sealer.isStale(value) } : null
    },
    expired: (value) => sealedExpired(sealer, value),
  }
}

// A seal opened from the sealer's cache is the same frozen object on every request: it is
// unpacked once (packed-session.ts), and the unpacked ref shared, frozen in turn.
const unpackedRefs = new WeakMap<object, SessionRef | null>()

/** The ref a sealed cookie held, packed session unpacked; null for anything else. */
function unpacked(opened: object | null): SessionRef | null {
  if (!opened) return null
  let ref = unpackedRefs.get(opened)
  if (ref === undefined) {
    ref = unpackRef(opened)
    if (!Object.isFrozen(opened)) return ref
    if (ref && 'session' in ref && ref !== opened) {
      Object.freeze(ref.session.claims)
      Object.freeze(ref.session)
      Object.freeze(ref)
    }
    unpackedRefs.set(opened, ref)
  }
  return ref
}

/**
 * WebCrypto's HMAC-SHA256, one imported key per secret. The known secrets' keys are imported when
 * it is made (on Workers: at isolate start-up), not on the first cookie checked.
 */
function webCryptoHmac(secrets: readonly string[]): Hmac {
  const keys = new Map<string, Promise<CryptoKey>>()
  const encoder = new TextEncoder()
  const keyOf = (secret: string) => {
    let key = keys.get(secret)
    if (!key) {
      key = crypto.subtle.importKey(
        'raw',
        encoder.encode(secret),
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['sign']
      )
      // A failed import is not remembered: the next call tries again.
      key.catch(() => keys.delete(secret))
      keys.set(secret, key)
    }
    return key
  }
  for (const secret of secrets) void keyOf(secret).catch(() => {})
  return async (secret, message) =>
    new Uint8Array(await crypto.subtle.sign('HMAC', await keyOf(secret), encoder.encode(message)))
}

/** Compares two MACs in time that depends on their length only. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return diff === 0
}

function base64url(bytes: Uint8Array): string {
  let binary = ''
  for (const byte of bytes) binary += String.fromCharCode(byte)
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}
