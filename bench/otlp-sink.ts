/**
 * `npm run bench -- --tracing`: where the traced BFF exports its spans, as a collector on loopback
 * would take them (OTLP/HTTP, protobuf by default). It reads each export whole and answers 200,
 * counting exports and bytes so the bench can show that spans did flow.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serveParent } from './child.ts'

const seen = { exports: 0, bytes: 0 }

const server = createServer((req, res) => {
  req.on('data', (chunk: Buffer) => (seen.bytes += chunk.length))
  req.on('end', () => {
    if (req.url === '/v1/traces') seen.exports++
    res.writeHead(req.url === '/v1/traces' ? 200 : 404, {
      'content-type': 'application/x-protobuf',
      'content-length': 0,
    })
    res.end()
  })
})
server.keepAliveTimeout = 65_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  serveParent(
    `http://127.0.0.1:${port}`,
    { stats: () => ({ ...seen }) },
    () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  )
})
