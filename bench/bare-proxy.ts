/**
 * The practical limit for a Node proxy: a bare `node:http` pass-through that adds a fixed bearer
 * token, with a keep-alive agent to the upstream. No framework, no session, no checks beyond
 * dropping hop-by-hop headers and the cookie. Upstream from BENCH_UPSTREAM (an origin; paths
 * pass as they are).
 */
import { Agent, createServer, request, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serveParent } from './child.ts'

const upstream = new URL(process.env.BENCH_UPSTREAM ?? 'http://127.0.0.1:4000')
const agent = new Agent({ keepAlive: true })
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
])

function clean(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {}
  for (const name in headers) if (!HOP_BY_HOP.has(name)) out[name] = headers[name]
  return out
}

const server = createServer((req, res) => {
  const headers = clean(req.headers)
  // The browser's cookie is its credential here, not the upstream's: dropped, as the BFF does.
  delete headers.cookie
  headers.authorization = 'Bearer bench-fixed-token'
  const outgoing = request(
    {
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
      agent,
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, clean(answer.headers))
      answer.pipe(res)
    }
  )
  outgoing.on('error', () => {
    if (!res.headersSent) res.writeHead(502)
    res.end()
  })
  req.pipe(outgoing)
})
server.keepAliveTimeout = 65_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  serveParent(
    `http://127.0.0.1:${port}`,
    {},
    () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  )
})
