/**
 * A policy decision point on loopback, speaking OPA's REST data API (`POST /v1/data/<path>` with
 * `{ "input": … }`): each call is recorded and answered by `decide`, a rule the test sets, which
 * may also answer with another status, a body that is not JSON, or late.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface PdpCall {
  method: string
  url: string
  headers: IncomingHttpHeaders
  /** The raw body as received. */
  raw: string
  input: Record<string, unknown>
}

export interface PdpAnswer {
  status?: number
  /** An object is sent as JSON; a string as it is. */
  body?: unknown
  delayMs?: number
}

export interface Pdp {
  /** `http://127.0.0.1:<port>/v1/data/bff/allow`. */
  url: string
  calls: PdpCall[]
  /** The rule; by default everyone is allowed (`{ "result": true }`). */
  decide: (input: Record<string, unknown>) => PdpAnswer
  close(): Promise<void>
}

export async function startPdp(): Promise<Pdp> {
  const sockets = new Set<Socket>()
  const pdp: Pdp = {
    url: '',
    calls: [],
    decide: () => ({ body: { result: true } }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8')
      let input: Record<string, unknown> = {}
      try {
        input = (JSON.parse(raw) as { input: Record<string, unknown> }).input
      } catch {
        // recorded as it came
      }
      pdp.calls.push({ method: req.method!, url: req.url!, headers: req.headers, raw, input })
      const answer = pdp.decide(input)
      const send = () => {
        if (res.destroyed) return
        const body = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body)
        res.writeHead(answer.status ?? 200, { 'content-type': 'application/json' })
        res.end(body)
      }
      if (answer.delayMs) setTimeout(send, answer.delayMs)
      else send()
    })
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  pdp.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/data/bff/allow`
  return pdp
}
