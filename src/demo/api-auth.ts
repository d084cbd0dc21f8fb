/**
 * The demo API's check of the token on a request, the same for its HTTP routes (api.ts) and for
 * the upgrade request of its WebSocket feed (api-live.ts): `Authorization: Bearer <token>`, or
 * `Authorization: DPoP <token>` with its proof (RFC 9449), the token then asked about at the IdP
 * (introspection, RFC 7662) and, when bound to a key, held to the proof's key.
 */
import type { IncomingMessage } from 'node:http'
import { bindingProblem, dpopProofChecker, isKeyBound } from './dpop-proof.ts'

export interface IntrospectionResult {
  active: boolean
  sub?: string
  scope?: string
  client_id?: string
  exp?: number
  /** The IdP that issued the token (oidc-provider says so in its answer). */
  iss?: string
  /** How the user signed in, when the IdP says (the demo IdP does: `pwd` or `mfa`). */
  acr?: string
  auth_time?: number
  [claim: string]: unknown
}

/** Answers whether a bearer token is active; throws when the answer cannot be had. */
export type Introspect = (token: string) => Promise<IntrospectionResult>

/** A request whose token is good: what the IdP said of it, and how it came. */
export interface Authenticated {
  scheme: 'Bearer' | 'DPoP'
  introspection: IntrospectionResult
}

/** Why a request's token is not good, as the answer to send: status, headers, JSON body. */
export interface Refusal {
  status: number
  headers: Record<string, string>
  body: { error: string; message?: string }
}

/** Checks the token of one request; `url` is the request's path and query. */
export type Authenticate = (
  req: IncomingMessage,
  url: URL
) => Promise<Authenticated | { refused: Refusal }>

/** A checker with one replay memory for the API's DPoP proofs, whichever route they come to. */
export function tokenChecker(introspect: Introspect): Authenticate {
  const checkProof = dpopProofChecker()
  return async (req, url) => {
    const authorization = req.headers.authorization ?? ''
    // RFC 9449 7.1: a DPoP-bound token comes in the DPoP scheme, with the proof in `DPoP`.
    const scheme = /^DPoP /i.test(authorization) ? 'DPoP' : 'Bearer'
    let token: string | undefined
    let jkt: string | undefined
    if (scheme === 'DPoP') {
      const checked = await checkProof({
        // An upgrade request is a GET, and its proof names the API's http(s) URL (RFC 9449 4.2).
        method: req.method ?? 'GET',
        // The URL the proof's htu names: this API as the proxy called it.
        url: new URL(url.pathname + url.search, `http://${req.headers.host}`),
        authorization,
        proof: typeof req.headers.dpop === 'string' ? req.headers.dpop : undefined,
      })
      if ('refused' in checked) {
        return refusal(
          401,
          'DPoP error="invalid_dpop_proof"',
          'invalid_dpop_proof',
          checked.refused
        )
      }
      ;({ token, jkt } = checked)
    } else token = /^Bearer ([^\s]+)$/i.exec(authorization)?.[1]
    if (!token) {
      return refusal(
        401,
        'Bearer, DPoP algs="ES256 PS256 EdDSA"',
        'unauthorized',
        'a bearer token is required'
      )
    }
    let introspection: IntrospectionResult
    try {
      introspection = await introspect(token)
    } catch (error) {
      console.error('[demo-api] introspection failed', error)
      return { refused: { status: 503, headers: {}, body: { error: 'introspection_failed' } } }
    }
    // Inactive, bound to another key than the proof's, or bound but sent without a proof.
    const refused = !introspection.active
      ? 'the token is not active'
      : jkt !== undefined
        ? bindingProblem(introspection, jkt) && 'the token is not bound to the key of the proof'
        : isKeyBound(introspection) && 'a DPoP-bound token needs its proof (the DPoP scheme)'
    if (refused) return refusal(401, `${scheme} error="invalid_token"`, 'invalid_token', refused)
    return { scheme, introspection }
  }
}

function refusal(
  status: number,
  challenge: string,
  error: string,
  message: string
): { refused: Refusal } {
  return {
    refused: { status, headers: { 'www-authenticate': challenge }, body: { error, message } },
  }
}
