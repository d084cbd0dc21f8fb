/**
 * An https upstream on loopback for mutual TLS tests, with the certificates of certs.ts. `strict`
 * demands a client certificate of the test CA during the handshake (`requestCert`,
 * `rejectUnauthorized`), as a service that trusts only its gateway would; otherwise it asks for
 * one but takes calls without, and records what each call presented.
 */
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { TestCertificates } from './certs.ts'

export interface SeenCall {
  url: string
  /** CN of the client certificate presented, or null. */
  clientCn: string | null
  /** The certificate was valid for the test CA. */
  authorized: boolean
  authorization?: string
}

export interface MtlsUpstream {
  /** `https://127.0.0.1:<port>` (the server certificate names 127.0.0.1 and localhost). */
  url: string
  calls: SeenCall[]
  /** Handshakes the server refused (no certificate, or one of another CA). */
  refusedHandshakes: number
  close(): Promise<void>
}

export async function startMtlsUpstream(
  certs: TestCertificates,
  { strict }: { strict: boolean }
): Promise<MtlsUpstream> {
  const calls: SeenCall[] = []
  let refused = 0
  const server: Server = createServer(
    {
      cert: certs.server.cert,
      key: certs.server.key,
      ca: certs.ca,
      requestCert: true,
      rejectUnauthorized: strict,
    },
    (req, res) => {
      const socket = req.socket as TLSSocket
      const peer = socket.getPeerCertificate()
      const call: SeenCall = {
        url: req.url ?? '',
        clientCn: peer && peer.subject ? String(peer.subject.CN) : null,
        authorized: socket.authorized,
        authorization: req.headers.authorization,
      }
      calls.push(call)
      req.resume()
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ clientCn: call.clientCn, authorized: call.authorized }))
      })
    }
  )
  server.on('tlsClientError', () => refused++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `https://127.0.0.1:${port}`,
    calls,
    get refusedHandshakes() {
      return refused
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
