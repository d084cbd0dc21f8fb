/**
 * A resource server that accepts only DPoP-bound tokens (RFC 9449 7), with the demo API's checks
 * (src/demo/dpop-proof.ts): `Authorization: DPoP` with a proof signed by the key in its `jwk`
 * header, for this method and URL (`htm`, `htu`), this token (`ath`), recent (`iat`), never seen
 * before (`jti`), and with the key the token is bound to (the IdP's introspection answers
 * `cnf.jkt`). With `nonce`, it also asks for its current nonce; with `nonceOnEveryAnswer`, each
 * accepted call's answer hands out the next one in `DPoP-Nonce` (RFC 9449 9), unasked.
 * WebSocket upgrades are held to the same (a GET of the upstream's http URL), then echo.
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocketServer } from 'ws'
import { bindingProblem, dpopProofChecker } from '../../src/demo/dpop-proof.ts'

export interface DpopRequest {
  method: string
  url: string
  /** Empty when the call was accepted, else why it was refused. */
  refused?: string
  proof?: string
  token?: string
  nonce?: string
  /** The request body as it arrived. */
  body: string
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

export async function startDpopUpstream(
  options: { nonce?: boolean; nonceOnEveryAnswer?: boolean } = {}
): Promise<DpopUpstream> {
  const requests: DpopRequest[] = []
  const checkProof = dpopProofChecker()
  const newNonce = () => randomBytes(16).toString('base64url')
  let nonce = newNonce()

  async function check(method: string, url: URL, headers: Record<string, unknown>, body: string) {
    const proof = typeof headers.dpop === 'string' ? headers.dpop : undefined
    const record: DpopRequest = { method, url: url.pathname + url.search, proof, body }
    requests.push(record)
    const checked = await checkProof({
      method,
      url,
      authorization: String(headers.authorization ?? ''),
      proof,
      ...(options.nonce ? { nonce } : {}),
    })
    record.token = checked.token
    record.nonce = checked.nonce
    if ('refused' in checked) return { record, refused: checked.refused }
    return { record, refused: bindingProblem(await self.introspect!(checked.token), checked.jkt) }
  }

  const server = createServer(async (req, res) => {
    let body = ''
    for await (const chunk of req) body += chunk
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`)
    const { record, refused } = await check(req.method ?? 'GET', url, req.headers, body)
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
    if (options.nonceOnEveryAnswer) nonce = newNonce()
    res.writeHead(200, {
      'content-type': 'application/json',
      ...(options.nonceOnEveryAnswer ? { 'dpop-nonce': nonce } : {}),
    })
    res.end(JSON.stringify({ path: url.pathname, ok: true }))
  })
  // WebSocket upgrades are checked the same way (a GET of the http URL), then echo.
  const sockets = new WebSocketServer({ noServer: true })
  server.on('upgrade', async (req, socket: Socket, head) => {
    const url = new URL(req.url ?? '/', `http://${req.headers.host}`)
    const { record, refused } = await check('GET', url, req.headers, '')
    record.refused = refused
    if (!refused) {
      sockets.handleUpgrade(req, socket, head, (ws) =>
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
      )
      return
    }
    const challenge =
      refused === 'nonce'
        ? `WWW-Authenticate: DPoP error="use_dpop_nonce"\r\nDPoP-Nonce: ${nonce}\r\n`
        : 'WWW-Authenticate: DPoP error="invalid_token"\r\n'
    // The connection closes with the answer, and says so (a client may keep it for its next call).
    socket.end(
      `HTTP/1.1 401 Unauthorized\r\n${challenge}Content-Length: 0\r\nConnection: close\r\n\r\n`
    )
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const self: DpopUpstream = {
    url: `http://127.0.0.1:${port}`,
    requests,
    rotateNonce: () => void (nonce = newNonce()),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  return self
}
