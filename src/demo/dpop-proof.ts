/**
 * A resource server's side of DPoP (RFC 9449 4.3, 7): the checks of `Authorization: DPoP <token>`
 * with its `DPoP` proof, shared by the demo API (api.ts) and the tests' proof-verifying upstream
 * (test/helpers/dpop-upstream.ts). The proof's signature with the key in its `jwk` header, `typ`,
 * `htm` and `htu` of this request, `ath` of this token, a recent `iat`, a `jti` never seen before
 * and, when the server asks for one, its nonce. Whether the token is bound to that key (`cnf.jkt`)
 * is for the caller to ask the IdP (introspection), then `bindingProblem`.
 */
import { createHash } from 'node:crypto'
import * as jose from 'jose'

/** A checked proof: the token it came with and its key's thumbprint. */
export interface CheckedProof {
  token: string
  /** RFC 7638 thumbprint of the proof's key: a bound token's `cnf.jkt` must equal it. */
  jkt: string
  /** The proof's `nonce`, if it had one. */
  nonce?: string
}

/** Why a request was refused (`jti`, `htu`, `nonce`, ...), with what could be read of it. */
export interface RefusedProof {
  refused: string
  token?: string
  nonce?: string
}

export interface DpopRequest {
  method: string
  /** The URL the request was sent to (the proof's `htu` is its origin and path). */
  url: URL
  /** The `Authorization` header. */
  authorization?: string
  /** The `DPoP` header. */
  proof?: string
  /** The nonce the server asks for now, if it asks for one. */
  nonce?: string
}

/** Proofs older than this (or this far in the future) are refused. */
const MAX_AGE_SECONDS = 60
const CLOCK_TOLERANCE_SECONDS = 5

/**
 * A checker of one server: it remembers the `jti`s it accepted, each until its proof could no
 * longer be accepted anyway, so the memory stays bounded by the proofs of the last minute.
 */
export function dpopProofChecker(): (request: DpopRequest) => Promise<CheckedProof | RefusedProof> {
  const seen = new Map<string, number>()
  const remember = (jti: string) => {
    const now = Date.now()
    for (const [old, until] of seen) {
      if (until > now) break
      seen.delete(old)
    }
    seen.set(jti, now + (MAX_AGE_SECONDS + CLOCK_TOLERANCE_SECONDS) * 1000)
  }

  return async ({ method, url, authorization, proof, nonce }) => {
    const token = /^DPoP ([\w.~+/-]+=*)$/.exec(authorization ?? '')?.[1]
    if (!token || !proof) return { refused: 'no DPoP token or proof', token }
    let verified
    try {
      verified = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256', 'PS256', 'EdDSA'],
        maxTokenAge: MAX_AGE_SECONDS,
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      })
    } catch (err) {
      return { refused: `proof: ${(err as Error).message}`, token }
    }
    const { payload, protectedHeader } = verified
    const sent = typeof payload.nonce === 'string' ? payload.nonce : undefined
    const refused = (why: string): RefusedProof => ({ refused: why, token, nonce: sent })
    if (payload.htm !== method) return refused('htm')
    if (payload.htu !== `${url.origin}${url.pathname}`) return refused('htu')
    if (payload.ath !== createHash('sha256').update(token).digest('base64url')) {
      return refused('ath')
    }
    if (typeof payload.jti !== 'string' || !payload.jti || seen.has(payload.jti)) {
      return refused('jti')
    }
    // A proof without the nonce is not spent: its jti is kept only once a proof is accepted.
    if (nonce !== undefined && sent !== nonce) return refused('nonce')
    remember(payload.jti)
    return { token, jkt: await jose.calculateJwkThumbprint(protectedHeader.jwk!), nonce: sent }
  }
}

/**
 * Why the IdP's word on a token (introspection) does not bind it to the proof's key, or
 * undefined when it does: inactive, or its `cnf.jkt` another key's.
 */
export function bindingProblem(
  info: { active: boolean; cnf?: { jkt?: string } | unknown },
  jkt: string
): string | undefined {
  if (!info.active) return 'inactive token'
  if ((info.cnf as { jkt?: unknown } | undefined)?.jkt !== jkt) return 'cnf.jkt'
  return undefined
}

/** A token the IdP bound to a key (`cnf.jkt`): it must never be taken as a bearer token. */
export function isKeyBound(info: Readonly<Record<string, unknown>>): boolean {
  return typeof (info.cnf as { jkt?: unknown } | undefined)?.jkt === 'string'
}
