/**
 * A resource server that accepts only DPoP-bound tokens (RFC 9449 7): `Authorization: DPoP` with a
 * proof signed by the key in its `jwk` header, for this method and URL (`htm`, `htu`), this token
 * (`ath`), recent (`iat`), never seen before (`jti`), and with the key the token is bound to (the
 * IdP's introspection answers `cnf.jkt`). With `nonce`, it also asks for its current nonce.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import * as jose from 'jose'

export interface DpopRequest {
  method: string
  url: string
  /** Empty when the call was accepted, else why it was refused. */
  refused?: string
  proof?: string
  token?: string
  nonce?: string
}

export interface DpopUpstream {
  url: string
  requests: DpopRequest[]
  /** What the IdP says of a token (`cnf.jkt`, `active`); set once the IdP runs. */
  introspect?: (token: string) => Promise<{ active: boolean; cnf?: { jkt?: string } }>
  /** Issue a new nonce: proofs with the old one are then challenged. */
  rotateNonce(): void
  close(): Promise<void>
}

export async function startDpopUpstream(options: { nonce?: boolean } = {}): Promise<DpopUpstream> {
  const requests: DpopRequest[] = []
  const seen = new Set<string>()
  let nonce = randomBytes(16).toString('base64url')

  async function check(method: string, url: URL, headers: Record<string, unknown>) {
    const token = /^DPoP (\S+)$/.exec(String(headers.authorization ?? ''))?.[1]
    const proof = typeof headers.dpop === 'string' ? headers.dpop : undefined
    const record: DpopRequest = { method, url: url.pathname + url.search, proof, token }
    requests.push(record)
    if (!token || !proof) return { record, refused: 'no DPoP token or proof' }
    let verified
    try {
      verified = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
        typ: 'dpop+jwt',
        algorithms: ['ES256'],
        maxTokenAge: 60,
        clockTolerance: 5,
      })
    } catch (err) {
      return { record, refused: `proof: ${(err as Error).message}` }
    }
    const { payload, protectedHeader } = verified
    record.nonce = payload.nonce as string | undefined
    const ath = createHash('sha256').update(token).digest('base64url')
    if (payload.htm !== method) return { record, refused: 'htm' }
    if (payload.htu !== `${url.origin}${url.pathname}`) return { record, refused: 'htu' }
    if (payload.ath !== ath) return { record, refused: 'ath' }
    if (typeof payload.jti !== 'string' || seen.has(payload.jti)) return { record, refused: 'jti' }
    seen.add(payload.jti)
    if (options.nonce && payload.nonce !== nonce) return { record, refused: 'nonce' }
    const info = await self.introspect!(token)
    const jkt = await jose.calculateJwkThumbprint(protectedHeader.jwk!)
    if (!info.active) return { record, refused: 'inactive token' }
    if (info.cnf?.jkt !== jkt) return { record, refused: 'cnf.jkt' }
    return { record, refused: undefined }
  }

  const server = createServer(async (req, res) => {
    req.resume()
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`)
    const { record, refused } = await check(req.method ?? 'GET', url, req.headers)
    record.refused = refused
    if (refused === 'nonce') {
      res.writeHead(401, {
        'www-authenticate': 'DPoP error="use_dpop_nonce", error_description="a nonce is needed"',
        'dpop-nonce': nonce,
        'content-type': 'application/json',
      })
      return res.end('{"error":"use_dpop_nonce"}')
    }
    if (refused) {
      res.writeHead(401, { 'www-authenticate': 'DPoP error="invalid_token"' })
      return res.end(JSON.stringify({ refused }))
    }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ path: url.pathname, ok: true }))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const self: DpopUpstream = {
    url: `http://127.0.0.1:${port}`,
    requests,
    rotateNonce: () => void (nonce = randomBytes(16).toString('base64url')),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  return self
}
