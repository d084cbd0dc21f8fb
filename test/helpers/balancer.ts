/**
 * A round-robin load balancer on loopback: the browser sees one origin, requests alternate between
 * BFF instances, as behind a real load balancer without sticky sessions.
 */
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Balancer {
  url: string
  /** Sets or replaces the instance at `index` (after a restart on another port). */
  setTarget(index: number, url: string): void
  close(): Promise<void>
}

/** Listens on a free port first, so the origin is known before the instances behind it start. */
export async function startBalancer(targets: string[] = []): Promise<Balancer> {
  const backends = [...targets]
  let next = 0
  const server = createServer((req, res) => {
    if (backends.length === 0) return void res.writeHead(503).end()
    const target = new URL(backends[next++ % backends.length]!)
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.rawHeaders)
        answer.pipe(res)
      }
    )
    upstream.on('error', () => {
      res.writeHead(502).end()
    })
    req.pipe(upstream)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    setTarget(index, url) {
      backends[index] = url
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
