/**
 * The policy decision point of `npm run bench -- --pdp`: OPA's REST data API shape, reading the
 * input and answering `{ "result": true }` at once, so its own cost is the floor (a real OPA
 * evaluating a small Rego rule adds some tens of microseconds). Counts the calls it answers by
 * the input's route, so that calls still in flight from one route's load count for that route.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serveParent } from './child.ts'

const ALLOW = Buffer.from('{"result":true}')
const calls: Record<string, number> = {}

const server = createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    const { input } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      input: { route: string }
    }
    calls[input.route] = (calls[input.route] ?? 0) + 1
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': ALLOW.length })
    res.end(ALLOW)
  })
})
server.keepAliveTimeout = 65_000
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  serveParent(
    `http://127.0.0.1:${port}`,
    { calls: () => ({ ...calls }) },
    () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  )
})
