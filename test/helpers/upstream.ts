/** A real HTTP upstream on loopback that records what reached it, for proxy assertions. */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Inspect, TokenView } from './token-inspector.ts'

export interface RecordedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  /** What the bearer token says (aud, scope, sub, client_id), when the upstream inspects tokens. */
  token?: TokenView
}

export interface RecordingUpstream {
  url: string
  requests: RecordedRequest[]
  close(): Promise<void>
}

/**
 * Answers every request with 200 JSON `{ path, ok }` and records it; `?location=<url>` answers
 * 302 to that URL instead. With `inspect`, it reads each bearer token first, as a resource server
 * would, and records what it says (and answers it as `token`).
 */
export async function startRecordingUpstream(
  options: { inspect?: Inspect } = {}
): Promise<RecordingUpstream> {
  const requests: RecordedRequest[] = []
  const server = createServer(async (req, res) => {
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
    }
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1]
    if (options.inspect && bearer) recorded.token = await options.inspect(bearer)
    requests.push(recorded)
    req.resume()
    // `?delay=ms` makes this answer slow, for tests of requests that outlive others.
    const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0)
    const location = new URL(req.url ?? '/', 'http://x').searchParams.get('location')
    req.on('end', () => {
      if (location) {
        res.writeHead(302, { location })
        res.end()
        return
      }
      setTimeout(() => {
        res.setHeader('content-type', 'application/json')
        res.setHeader('set-cookie', 'upstream=leak; Path=/')
        res.end(JSON.stringify({ path: req.url, ok: true, token: recorded.token }))
      }, delay)
    })
  })
  // Node's default. It was 100 ms, and workerd's fetch (which does not read the Keep-Alive hint
  // as undici does) now and then sent a request on a connection this server was closing at that
  // moment: "Network connection lost." before any answer. The proxy now sends a GET once more in
  // that case (test/adapters/node/upstream.test.ts shows it); a POST cannot be, and answered 502.
  server.keepAliveTimeout = 5000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A port that was free a moment ago: for services that must know each other's URLs up front. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}
