/**
 * `clientKey`, the private key(s) of `private_key_jwt` (RFC 7523 client assertions), checked when
 * the options are: a private JWK (object or JSON text), a JWK set's JSON, or PKCS#8 PEM text, one
 * or a list (the first signs, the others are kept while the IdP's registered keys rotate). The
 * check is synchronous, as config checks are, so it reads the key's shape (the JWK members, the
 * PKCS#8 algorithm identifier) rather than importing it; the import (jose, WebCrypto) happens at
 * discovery. No message ever quotes the key.
 */

/** One key as the rest of the BFF keeps it: a JWK object, or PKCS#8 PEM text. */
export type ClientKey = Readonly<JsonWebKey> | string

/** The JWS algorithms a client assertion may be signed with, by key type. */
const RSA_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512']
const EC_ALG_BY_CURVE: Record<string, string> = {
  'P-256': 'ES256',
  'P-384': 'ES384',
  'P-521': 'ES512',
}
const OKP_ALGS = ['EdDSA', 'Ed25519']

// DER object identifiers (content bytes, hex) of the PKCS#8 algorithms and curves understood.
const OID = {
  rsa: '2a864886f70d010101',
  rsaPss: '2a864886f70d01010a',
  ec: '2a8648ce3d0201',
  ed25519: '2b6570',
}
const CURVE_OIDS: Record<string, string> = {
  '2a8648ce3d030107': 'P-256',
  '2b81040022': 'P-384',
  '2b81040023': 'P-521',
}

/**
 * The JWS algorithm `key` signs with: a JWK's own `alg`, else RS256 for RSA, the curve's ES*
 * for EC, EdDSA for Ed25519. Throws a message (never quoting the key) when it cannot sign.
 */
export function clientKeyAlg(key: ClientKey): string {
  return typeof key === 'string' ? pemAlg(key) : jwkAlg(key)
}

/**
 * `value` as a list of keys, each checked; undefined after reporting the first problem (`bad`
 * names the entry, never the key).
 */
export function clientKeysOf(value: unknown, bad: (why: string) => void): ClientKey[] | undefined {
  const list = splitKeys(value)
  if (typeof list === 'string') {
    bad(list)
    return undefined
  }
  if (list.length === 0) {
    bad('must hold at least one private key')
    return undefined
  }
  for (const [i, key] of list.entries()) {
    try {
      clientKeyAlg(key)
    } catch (err) {
      const which = list.length > 1 ? `entry ${i + 1} ` : ''
      bad(`${which}${(err as Error).message}`)
      return undefined
    }
  }
  return list
}

/** The keys `value` holds, or why it holds none usable. */
function splitKeys(value: unknown): ClientKey[] | string {
  if (Array.isArray(value)) {
    const keys: ClientKey[] = []
    for (const item of value) {
      const inner = splitKeys(item)
      if (typeof inner === 'string') return inner
      keys.push(...inner)
    }
    return keys
  }
  if (typeof value === 'object' && value !== null) {
    const set = (value as { keys?: unknown }).keys
    return Array.isArray(set) ? splitKeys(set) : [value as JsonWebKey]
  }
  if (typeof value !== 'string' || !value.trim()) {
    return 'must be a private JWK (object or JSON text), PKCS#8 PEM text, or a list of them'
  }
  // A PEM pasted into a one-line setting often has its line breaks written as `\n`.
  const text = value.trim().replace(/\\n/g, '\n')
  if (text.startsWith('{') || text.startsWith('[')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return 'is not valid JSON (a JWK must be a JSON object)'
    }
    return typeof parsed === 'object' && parsed !== null
      ? splitKeys(parsed)
      : 'must be a JSON object (a JWK)'
  }
  // PEM: every block of the text, so one setting can hold the signing key and the next.
  const blocks = text.match(/-----BEGIN [A-Z0-9 ]+-----[\s\S]*?-----END [A-Z0-9 ]+-----/g)
  if (!blocks) return 'is neither a JWK (JSON) nor PEM text'
  return blocks
}

function jwkAlg(jwk: Readonly<JsonWebKey>): string {
  const { kty, alg, use } = jwk as JsonWebKey & { use?: unknown }
  if (kty === 'oct')
    throw new Error('is a symmetric key: private_key_jwt needs an RSA, EC or Ed25519 private key')
  if (use !== undefined && use !== 'sig') throw new Error(`has "use": "${String(use)}", not "sig"`)
  const members = (names: readonly string[]) => {
    for (const name of names) {
      const member = (jwk as Record<string, unknown>)[name]
      if (typeof member !== 'string' || !/^[A-Za-z0-9_-]+$/.test(member)) {
        throw new Error(`lacks "${name}" (or it is not base64url)`)
      }
    }
  }
  const privateOnly = () => {
    if ((jwk as { d?: unknown }).d === undefined) {
      throw new Error('is a public key only: the private key (with "d") is needed')
    }
  }
  const checkAlg = (allowed: readonly string[], fallback: string) => {
    if (alg === undefined) return fallback
    if (!allowed.includes(alg)) {
      throw new Error(
        `has "alg": "${alg}", which a ${kty} key cannot sign client assertions with (${allowed.join(', ')})`
      )
    }
    return alg
  }
  if (kty === 'RSA') {
    privateOnly()
    members(['n', 'e', 'd'])
    return checkAlg(RSA_ALGS, 'RS256')
  }
  if (kty === 'EC') {
    privateOnly()
    const curveAlg = EC_ALG_BY_CURVE[String(jwk.crv)]
    if (!curveAlg) throw new Error(`has curve "${String(jwk.crv)}"; supported: P-256, P-384, P-521`)
    members(['x', 'y', 'd'])
    return checkAlg([curveAlg], curveAlg)
  }
  if (kty === 'OKP') {
    privateOnly()
    if (jwk.crv !== 'Ed25519') throw new Error(`has curve "${String(jwk.crv)}"; supported: Ed25519`)
    members(['x', 'd'])
    return checkAlg(OKP_ALGS, 'EdDSA')
  }
  throw new Error(`has "kty": "${String(kty)}"; supported: RSA, EC, OKP (Ed25519)`)
}

function pemAlg(pem: string): string {
  const label = /-----BEGIN ([A-Z0-9 ]+)-----/.exec(pem)?.[1]
  if (label === 'PUBLIC KEY' || label === 'CERTIFICATE' || label === 'RSA PUBLIC KEY') {
    throw new Error('is a public key only: the private key is needed')
  }
  if (label === 'ENCRYPTED PRIVATE KEY') {
    throw new Error('is encrypted: give it unencrypted (openssl pkcs8 -topk8 -nocrypt)')
  }
  if (label === 'RSA PRIVATE KEY' || label === 'EC PRIVATE KEY') {
    throw new Error(
      `is ${label} (PKCS#1/SEC1) PEM: convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)`
    )
  }
  if (label !== 'PRIVATE KEY') throw new Error(`is PEM "${label}", not "PRIVATE KEY" (PKCS#8)`)
  const body = pem.replace(/-----[A-Z0-9 ]+-----/g, '').replace(/\s+/g, '')
  let der: Uint8Array
  try {
    der = Uint8Array.from(atob(body), (c) => c.charCodeAt(0))
  } catch {
    throw new Error('is PEM whose body is not base64')
  }
  const { algorithm, parameter } = pkcs8Algorithm(der)
  if (algorithm === OID.rsa) return 'RS256'
  if (algorithm === OID.rsaPss) return 'PS256'
  if (algorithm === OID.ed25519) return 'EdDSA'
  if (algorithm === OID.ec) {
    const curve = parameter && CURVE_OIDS[parameter]
    if (!curve) throw new Error('is an EC key on a curve other than P-256, P-384 or P-521')
    return EC_ALG_BY_CURVE[curve]!
  }
  throw new Error('is a PKCS#8 key of a type that cannot sign client assertions (RSA, EC, Ed25519)')
}

/**
 * The algorithm OID of a PKCS#8 PrivateKeyInfo (and its OID parameter, an EC curve), read from
 * the DER: SEQUENCE { INTEGER version, SEQUENCE { OID, params }, OCTET STRING key }.
 */
function pkcs8Algorithm(der: Uint8Array): { algorithm: string; parameter?: string } {
  const broken = () => new Error('is not a PKCS#8 private key (its DER does not parse)')
  const read = (at: number, tag: number) => {
    if (der[at] !== tag) throw broken()
    let length = der[at + 1]
    let start = at + 2
    if (length === undefined) throw broken()
    if (length & 0x80) {
      const bytes = length & 0x7f
      if (bytes < 1 || bytes > 3) throw broken()
      length = 0
      for (let i = 0; i < bytes; i++) length = (length << 8) | (der[start + i] ?? 0)
      start += bytes
    }
    if (start + length > der.length) throw broken()
    return { start, end: start + length }
  }
  const hex = (from: number, to: number) =>
    Array.from(der.subarray(from, to), (b) => b.toString(16).padStart(2, '0')).join('')
  const outer = read(0, 0x30)
  const version = read(outer.start, 0x02)
  const algorithm = read(version.end, 0x30)
  const oid = read(algorithm.start, 0x06)
  const parameter =
    oid.end < algorithm.end && der[oid.end] === 0x06 ? read(oid.end, 0x06) : undefined
  read(algorithm.end, 0x04)
  return {
    algorithm: hex(oid.start, oid.end),
    parameter: parameter && hex(parameter.start, parameter.end),
  }
}
