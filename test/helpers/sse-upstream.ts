/**
 * An upstream that streams Server-Sent Events, for the streaming tests: `GET /events?count=N&every=ms`
 * writes N events (`id: i`, `data: tick i`), one every `every` ms, then ends; with `hold=1` it
 * writes the first event at once and the rest only after `release()`. `writing()` counts streams
 * the upstream is still writing.
 */
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'

export interface SseUpstream {
  url: string
  /** Streams whose last event is not written yet. */
  writing(): number
  /** Lets every `hold=1` stream write its remaining events. */
  release(): void
  close(): Promise<void>
}

export async function startSseUpstream(): Promise<SseUpstream> {
  const sockets = new Set<Socket>()
  let writing = 0
  let held: Array<() => void> = []
  const server = createServer((req, res) => {
    req.resume()
    const url = new URL(req.url ?? '/', 'http://upstream')
    const count = Number(url.searchParams.get('count') ?? 3)
    const every = Number(url.searchParams.get('every') ?? 0)
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    writing++
    const send = (i: number) => res.write(`id: ${i}\ndata: tick ${i}\n\n`)
    const rest = (i: number) => {
      if (res.destroyed) return void writing--
      if (i > count) {
        writing--
        res.end()
        return
      }
      send(i)
      setTimeout(() => rest(i + 1), every)
    }
    send(1)
    if (url.searchParams.get('hold') === '1') held.push(() => rest(2))
    else setTimeout(() => rest(2), every)
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    writing: () => writing,
    release() {
      for (const go of held) go()
      held = []
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

export type { ServerResponse }
