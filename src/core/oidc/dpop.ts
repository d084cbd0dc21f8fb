/**
 * DPoP (RFC 9449) with `dpop: true`: each session has its own ES256 key pair, created at login and
 * kept with the session as a private JWK (the store or the sealed cookie holds it, as it holds the
 * tokens the key protects). Token-endpoint proofs and their `DPoP-Nonce` retry are openid-client's
 * (`getDPoPHandle`); upstream proofs are signed here with jose, because oauth4webapi's handle makes
 * proofs only inside its own requests and the proxy sends through its own transports.
 */
import * as jose from 'jose'
import * as client from 'openid-client'
import type { DpopJwk } from '../session/types.ts'
import { oldestFirst } from '../oldest-first.ts'

export type { DpopJwk }

/** What a proof is signed with: the private key never extractable, the public one for `jwk`. */
export interface DpopKey {
  keyPair: CryptoKeyPair
  /** The public JWK for the proof's header. */
  publicJwk: jose.JWK
}

// Imported keys by `x`, so a session's calls do not import its key again each time. Bounded: the
// oldest goes first; a session whose key is dropped has it imported again on its next call.
const MAX_KEYS = 1000
const keys = new Map<string, Promise<DpopKey>>()
const oldestKey = oldestFirst(keys)

/** A new key pair for a session, as the JWK the session keeps. */
export async function newDpopJwk(): Promise<DpopJwk> {
  // Extractable once, to be kept with the session; every later use imports it non-extractable.
  const pair = await client.randomDPoPKeyPair('ES256', { extractable: true })
  const { kty, crv, x, y, d } = await crypto.subtle.exportKey('jwk', pair.privateKey)
  return { kty: kty as 'EC', crv: crv as 'P-256', x: x!, y: y!, d: d! }
}

/** The session's key, ready to sign (the private half not extractable). */
export function dpopKey(jwk: DpopJwk): Promise<DpopKey> {
  const known = keys.get(jwk.x)
  if (known) return known
  const imported = importKey(jwk)
  if (keys.size >= MAX_KEYS) keys.delete(oldestKey()![0])
  keys.set(jwk.x, imported)
  imported.catch(() => keys.delete(jwk.x))
  return imported
}

async function importKey(jwk: DpopJwk): Promise<DpopKey> {
  const publicJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }
  const [privateKey, publicKey] = await Promise.all([
    jose.importJWK(jwk, 'ES256', { extractable: false }),
    // openid-client's handle reads the public key to put it in its proofs: extractable.
    jose.importJWK(publicJwk, 'ES256', { extractable: true }),
  ])
  return {
    keyPair: { privateKey: privateKey as CryptoKey, publicKey: publicKey as CryptoKey },
    publicJwk,
  }
}

/** The key of a session that has one (`dpop` at its login), ready to sign. */
export async function sessionDpopKey(session: { dpopKey?: DpopJwk }): Promise<DpopKey | undefined> {
  return session.dpopKey ? dpopKey(session.dpopKey) : undefined
}

/** The RFC 7638 thumbprint of the session's key (what a bound token's `cnf.jkt` holds). */
export function dpopThumbprint(jwk: DpopJwk): Promise<string> {
  return jose.calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y })
}

/**
 * A proof for one upstream request (RFC 9449 4.2): `htm`, `htu` (the URL without query or
 * fragment), `ath` (the token's SHA-256), a unique `jti`, `iat`, and the upstream's `nonce` when
 * it has asked for one.
 */
export async function upstreamProof(
  key: DpopKey,
  method: string,
  url: URL,
  accessToken: string,
  nonce?: string
): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(accessToken))
  return new jose.SignJWT({
    htm: method,
    htu: `${url.origin}${url.pathname}`,
    ath: jose.base64url.encode(new Uint8Array(digest)),
    ...(nonce ? { nonce } : {}),
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .setJti(jose.base64url.encode(crypto.getRandomValues(new Uint8Array(16))))
    .setIssuedAt()
    .sign(key.keyPair.privateKey)
}
