/**
 * The session's cryptography through node:crypto, for the Node entry: iron-session's seal format
 * (`Fe26.2*…~2`, the same bytes in and out as iron-webcrypto: AES-256-CBC, HMAC-SHA256, keys by
 * PBKDF2-SHA1 with one iteration over a random 256-bit salt each, a 60 s skew on the seal's own
 * expiry) and the session-id cookie's HMAC. WebCrypto in Node answers every call through a
 * promise and a hop to the thread pool: opening a seal costs 400-700 µs of CPU that way, and well
 * under 100 µs here. Only the speed differs: each reads what the other writes. The seal's text,
 * read and written, is src/core/session/iron-format.ts's, shared with WebCrypto's web-iron.ts;
 * here are node:crypto's keys, MAC and cipher.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  pbkdf2Sync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto'
import {
  createSealer,
  type Iron,
  type Sealer,
  type SealerOptions,
} from '../../core/session/seal.ts'
import * as format from '../../core/session/iron-format.ts'
import type { Hmac } from '../../core/session/session-cookie.ts'

/** The version text iron-session's seals carry after `~`. */
const VERSION_TEXT = String(format.VERSION)

/** An iron key: PBKDF2-SHA1 of the password with `salt` (its hex text), one iteration. */
const key = (password: string, salt: string) => pbkdf2Sync(password, salt, 1, 32, 'sha1')

const mac = (password: string, salt: string, text: string) =>
  createHmac('sha256', key(password, salt)).update(text).digest('base64url')

/** iron-session's seal format through node:crypto (see the module's comment). */
export const nodeIron: Iron = {
  async seal(data, { id, secret }, ttlSeconds) {
    if (!/^\w+$/.test(id)) throw new Error('Invalid password id')
    const salt = randomBytes(32).toString('hex')
    const iv = randomBytes(16)
    const cipher = createCipheriv('aes-256-cbc', key(secret, salt), iv)
    const encrypted = Buffer.concat([cipher.update(JSON.stringify(data), 'utf8'), cipher.final()])
    const base = format.sealBase(
      id,
      salt,
      iv.toString('base64url'),
      encrypted.toString('base64url'),
      ttlSeconds
    )
    const hmacSalt = randomBytes(32).toString('hex')
    return format.sealText(base, hmacSalt, mac(secret, hmacSalt, base))
  },

  /**
   * Opens `sealed` as iron-session does, but answers null for every refusal before the MAC
   * (where iron-session answers `{}` or throws), and takes only its version 2: the data as
   * sealed (version 1 wrapped it, never made here).
   */
  async unseal(sealed, passwords) {
    const parts = format.sealParts(sealed)
    if (parts === null || typeof parts === 'string') return null
    if (format.versionText(sealed, parts) !== VERSION_TEXT) return null
    const password = format.sealPassword(passwords, parts)
    if (password == null) return null
    const [, , salt, iv, encrypted, , hmacSalt, hmac] = parts
    const expected = Buffer.from(mac(password, hmacSalt, format.macBase(sealed, parts)))
    const given = Buffer.from(hmac)
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null
    // Authentic from here on: what follows decodes what this secret's holder wrote.
    const decipher = createDecipheriv(
      'aes-256-cbc',
      key(password, salt),
      Buffer.from(iv, 'base64url')
    )
    const text = Buffer.concat([
      decipher.update(Buffer.from(encrypted, 'base64url')),
      decipher.final(),
    ]).toString('utf8')
    return text ? (JSON.parse(text) as unknown) : null
  },
}

/** HMAC-SHA256 through node:crypto, for the session-id cookie (session-cookie.ts). */
export const nodeHmac: Hmac = (secret, message) =>
  createHmac('sha256', secret).update(message).digest()

/** `createSealer` with node:crypto's iron. */
export function nodeSealer(secrets: readonly string[], options: SealerOptions = {}): Sealer {
  return createSealer(secrets, { ...options, iron: nodeIron })
}
