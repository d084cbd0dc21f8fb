/**
 * iron-session's seal format (`Fe26.2*…~2`: AES-256-CBC, HMAC-SHA256, each key by PBKDF2-SHA1 with
 * one iteration over a random 256-bit salt of its own, a 60 s skew on the seal's own expiry)
 * through WebCrypto directly, for the Workers entry. The same steps as iron-webcrypto, minus what
 * makes its generic path slow on a fresh isolate: a per-character base64url codec in JavaScript
 * (a 2-3 KB packed session is decoded one character at a time, in code not yet optimised), option
 * objects cloned and checked per call, and a password import for every key derived. Here base64url
 * goes through the runtime's own codec (Uint8Array's fromBase64/toBase64 where it has them, as
 * workerd does, else atob/btoa), each secret is imported for PBKDF2 once, and each key comes from
 * one deriveKey. The bytes in and out are iron's: each reads what the other writes
 * (test/core/session/web-iron.test.ts checks both ways and every refusal). The seal's text, read
 * and written, is iron-format.ts's, shared with node:crypto's implementation; here are WebCrypto's
 * keys, MAC and cipher, the base64url they need, and iron-session's answers to a refusal.
 */
import * as format from './iron-format.ts'
import type { Iron } from './seal.ts'

/** iron's minimum password length (`minPasswordlength`). */
const MIN_PASSWORD = 32
const BASE64URL = /^[\w-]*$/

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** Each secret imported once as PBKDF2 base key material (iron imports it per key derived). */
const baseKeys = new Map<string, Promise<CryptoKey>>()

function baseKey(password: string): Promise<CryptoKey> {
  let key = baseKeys.get(password)
  if (!key) {
    key = crypto.subtle.importKey('raw', encoder.encode(password), 'PBKDF2', false, ['deriveKey'])
    // A failed import is not remembered: the next call tries again.
    key.catch(() => baseKeys.delete(password))
    baseKeys.set(password, key)
  }
  return key
}

/** iron's key for `salt` (its text, as UTF-8 bytes): PBKDF2-SHA1, one iteration, 256 bits. */
async function derive(
  password: string,
  salt: string,
  algorithm: HmacImportParams | AesKeyAlgorithm,
  usage: KeyUsage
): Promise<CryptoKey> {
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', hash: 'SHA-1', salt: encoder.encode(salt), iterations: 1 },
    await baseKey(password),
    algorithm,
    false,
    [usage]
  )
}

const HMAC: HmacImportParams = { name: 'HMAC', hash: 'SHA-256', length: 256 }
const AES: AesKeyAlgorithm = { name: 'AES-CBC', length: 256 }

/** iron's MAC of `text`: HMAC-SHA256 under the key for `salt`, base64url without padding. */
async function mac(password: string, salt: string, text: string): Promise<string> {
  const key = await derive(password, salt, HMAC, 'sign')
  return base64urlEncode(
    new Uint8Array(await crypto.subtle.sign('HMAC', key, encoder.encode(text)))
  )
}

/** ES2026's base64 of typed arrays, where the runtime has it (workerd; not Node 20). */
interface NativeBase64 {
  toBase64?: (options: { alphabet: 'base64url'; omitPadding: true }) => string
}
const fromBase64 = (
  Uint8Array as unknown as {
    fromBase64?: (text: string, options: { alphabet: 'base64url' }) => Uint8Array<ArrayBuffer>
  }
).fromBase64

function base64urlEncode(bytes: Uint8Array): string {
  const native = (bytes as NativeBase64).toBase64
  if (native) return native.call(bytes, { alphabet: 'base64url', omitPadding: true })
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')
}

/**
 * base64url as iron decodes it. Every seal iron writes is canonical (no padding, never 4n+1
 * characters), decoded by the runtime's atob; anything else, which only a holder of the secret can
 * get past the MAC, goes through a copy of iron-webcrypto's own decoder, so that even then the
 * bytes (or the error) are iron's.
 */
function base64urlDecode(text: string): Uint8Array<ArrayBuffer> {
  if (!BASE64URL.test(text) || text.length % 4 === 1) return ironBase64urlDecode(text)
  // Only the base64url alphabet from here: the runtime's decoders read it as iron's does.
  if (fromBase64) return fromBase64(text, { alphabet: 'base64url' })
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'))
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'

/** iron-webcrypto 1.2's `base64urlDecode`, step for step (`=` anywhere counts as padding). */
function ironBase64urlDecode(raw: string): Uint8Array<ArrayBuffer> {
  const input = raw + '='.repeat((4 - (raw.length % 4)) % 4)
  let total = (input.length / 4) * 3
  if (input.endsWith('==')) total -= 2
  else if (input.endsWith('=')) total--
  const out = new Uint8Array(total)
  for (let i = 0; i < input.length; i += 4) {
    let bits = 0
    let bitLength = 0
    for (let j = i, limit = i + 3; j <= limit; j++) {
      if (input[j] === '=') bits >>= 6
      else {
        const value = ALPHABET.indexOf(input[j]!)
        if (value === -1) throw new TypeError(`Invalid character ${input[j]} in base64 string.`)
        bits |= value << ((limit - j) * 6)
        bitLength += 6
      }
    }
    bits >>= bitLength % 8
    const bytes = Math.floor(bitLength / 8)
    for (let k = 0; k < bytes; k++) {
      const offset = (bytes - k - 1) * 8
      out[(i / 4) * 3 + k] = (bits & (255 << offset)) >> offset
    }
  }
  return out
}

function hex(bytes: Uint8Array): string {
  let text = ''
  for (const byte of bytes) text += byte.toString(16).padStart(2, '0')
  return text
}

const randomBytes = (count: number) => crypto.getRandomValues(new Uint8Array(count))

/**
 * iron's seal of `data` with the bytes `random` draws, in iron's order (encryption salt, IV,
 * MAC salt), so that the same bytes make the same seal.
 */
async function sealWith(
  data: object,
  id: string,
  secret: string,
  ttlSeconds: number,
  random: (count: number) => Uint8Array<ArrayBuffer>
): Promise<string> {
  const salt = hex(random(32))
  const iv = random(16)
  const key = await derive(secret, salt, AES, 'encrypt')
  const encrypted = new Uint8Array(
    await crypto.subtle.encrypt({ name: 'AES-CBC', iv }, key, encoder.encode(JSON.stringify(data)))
  )
  const base = format.sealBase(
    id,
    salt,
    base64urlEncode(iv),
    base64urlEncode(encrypted),
    ttlSeconds
  )
  const hmacSalt = hex(random(32))
  return format.sealText(base, hmacSalt, await mac(secret, hmacSalt, base))
}

/**
 * One seal made and opened with a throwaway password and fixed bytes (no random values: this
 * runs at a Workers isolate's start-up, where they are refused), so that the first real seal of
 * the isolate finds this code compiled and WebCrypto's algorithms in use. Nothing it makes
 * leaves it, and the real secrets are never used with fixed bytes.
 */
async function warmUp(): Promise<void> {
  const password = 'web-iron-warm-up-0123456789-abcdefghijklmnop'
  const sealed = await sealWith({ v: { warm: true }, exp: 0 }, '1', password, 0, (count) =>
    new Uint8Array(count).fill(count)
  )
  await webIron.unseal(sealed, { '1': password })
  baseKeys.delete(password)
}
let warmedUp: Promise<void> | undefined

/** Compares two MACs in time that depends on their length only, as iron does. */
function sameText(a: string, b: string): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i)
  return diff === 0
}

/** iron-session's seal format through WebCrypto directly (see the module's comment). */
export const webIron: Iron = {
  prepare(secrets) {
    for (const secret of secrets) void baseKey(secret).catch(() => {})
    warmedUp ??= warmUp().catch(() => {})
    return warmedUp
  },

  async seal(data, { id, secret }, ttlSeconds) {
    if (id && !/^\w+$/.test(id)) throw new Error('Invalid password id')
    if (secret.length < MIN_PASSWORD) throw new Error('Password string too short')
    return sealWith(data, id, secret, ttlSeconds, randomBytes)
  },

  /**
   * Opens `sealed` exactly as iron-session's `unsealData` does: `{}` where it answers `{}` (a bad
   * MAC, an expired seal, an unknown password id, the wrong number of parts), a thrown error where
   * it throws, and for a seal of another token version its `persistent` part.
   */
  async unseal(sealed, passwords) {
    const parts = format.sealParts(sealed)
    if (parts === null) return {}
    if (typeof parts === 'string') throw new Error(parts)
    const password = format.sealPassword(passwords, parts)
    if (password === undefined) return {}
    // null: a name `passwords` only inherit, which iron takes for an empty password.
    if (typeof password !== 'string' || !password) throw new Error('Empty password')
    if (password.length < MIN_PASSWORD) throw new Error('Password string too short')
    const [, , salt, iv, encrypted, , hmacSalt, hmac] = parts
    // An empty salt: iron would derive the MAC's key from a random one, which never matches.
    if (!hmacSalt) return {}
    if (!sameText(await mac(password, hmacSalt, format.macBase(sealed, parts)), hmac)) return {}
    // Authentic from here on: what follows decodes what this secret's holder wrote.
    const ciphertext = base64urlDecode(encrypted)
    const ivBytes = base64urlDecode(iv)
    // iron would decrypt with the key of a random salt: a padding error, or garbage at best.
    if (!salt) throw new Error('Missing encryption salt')
    const key = await derive(password, salt, AES, 'decrypt')
    const text = decoder.decode(
      await crypto.subtle.decrypt({ name: 'AES-CBC', iv: ivBytes }, key, ciphertext)
    )
    const data = (text ? JSON.parse(text) : null) ?? {}
    const version = format.versionText(sealed, parts)
    return version !== undefined && parseInt(version, 10) === format.VERSION
      ? data
      : { ...(data as { persistent?: object }).persistent }
  },
}
