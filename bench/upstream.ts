/**
 * The API behind every proxy in the bench: answers any request with the same small JSON document,
 * the way a typical REST call of a SPA looks. It checks nothing, so its cost is the floor.
 * `…/download?size=N` streams N bytes instead, for the large-download row.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writePattern } from '../test/helpers/stream-upstream.ts'
import { serveParent } from './child.ts'

const BODY = Buffer.from(
  JSON.stringify({
    items: Array.from({ length: 4 }, (_, i) => ({ id: i + 1, name: `item ${i + 1}`, done: false })),
    next: null,
  })
)

// Counted so the bench can check that the proxies sent a bearer token on every call; the bench's
// own direct calls say so in a header.
const seen = { requests: 0, bearer: 0, direct: 0 }

const server = createServer((req, res) => {
  seen.requests++
  if (req.headers.authorization?.startsWith('Bearer ')) seen.bearer++
  else if (req.headers['x-bench-direct']) seen.direct++
  req.resume()
  // The large-download row: `size` bytes, chunked, in 64 KiB pieces that wait for the reader.
  const download = /\/download\?size=(\d+)$/.exec(req.url ?? '')
  if (download) {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    void writePattern(res, Number(download[1]), 65536)
    return
  }
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length })
    res.end(BODY)
  })
})
// Longer than any pause between bench runs, so idle keep-alive sockets of a proxy are not cut.
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
