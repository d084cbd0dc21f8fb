/**
 * A WebSocket upstream on loopback for the proxy's tests, recording every upgrade request that
 * reached it. What it does depends on the path's last segment:
 * - `echo`: sends each message back as it came (text as text, binary as binary); the text message
 *   `close <code> <reason>` makes it close with that code, `close` without a code, `terminate`
 *   drops the connection without a close frame; `protocol` picks the last subprotocol
 *   the client offered (any path but `noproto`, which picks none);
 * - `refuse?status=N`: answers the upgrade with status N, a JSON body, `Set-Cookie` and
 *   `WWW-Authenticate` (which must not reach the browser);
 * - `hang`: never answers the upgrade;
 * - `flood?bytes=N&chunk=M`: sends N bytes of a fixed pattern in binary messages of M bytes,
 *   waiting while more than 1 MiB waits in its own socket (a well-behaved sender), then closes 1000;
 * - `sink?hold=1`: reads nothing until `release()`, then counts and hashes what it received and
 *   answers `{ bytes, sha256 }` when the client sends the text `done`.
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { WebSocket, WebSocketServer } from 'ws'

export interface WsUpgrade {
  url: string
  headers: IncomingHttpHeaders
}

export interface WsUpstream {
  /** http://127.0.0.1:port */
  url: string
  /** Every upgrade request that reached the upstream, in order. */
  upgrades: WsUpgrade[]
  /** The close code and reason each socket of the upstream ended with, as it received them. */
  closes: Array<{ code: number; reason: string }>
  /** Sockets open now. */
  open(): number
  /** Bytes `flood` sockets have handed to their socket so far. */
  flooded(): number
  /** Lets `sink?hold=1` sockets read. */
  release(): void
  close(): Promise<void>
}

/** The bytes of a flood: this block over and over. */
export const FLOOD_BLOCK = Buffer.from(Array.from({ length: 1 << 16 }, (_, i) => (i * 7919) >>> 3))

export function floodSha256(bytes: number): string {
  const hash = createHash('sha256')
  for (let sent = 0; sent < bytes; sent += FLOOD_BLOCK.length) {
    hash.update(FLOOD_BLOCK.subarray(0, Math.min(FLOOD_BLOCK.length, bytes - sent)))
  }
  return hash.digest('hex')
}

export async function startWsUpstream(): Promise<WsUpstream> {
  const upgrades: WsUpgrade[] = []
  const closes: Array<{ code: number; reason: string }> = []
  const sockets = new Set<Socket>()
  const open = new Set<WebSocket>()
  let flooded = 0
  let held: Array<() => void> = []
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    // The last one offered; on `.../noproto` none, as an upstream that ignores them.
    handleProtocols: (offered, req) =>
      req.url?.endsWith('/noproto') ? false : ([...offered].at(-1) ?? false),
  })
  const server = createServer((_req, res) => res.writeHead(404).end())
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  server.on('upgrade', (req, socket: Socket, head) => {
    upgrades.push({ url: req.url ?? '', headers: req.headers })
    const url = new URL(req.url ?? '/', 'http://upstream')
    const action = url.pathname.split('/').at(-1)
    if (action === 'hang') return
    if (action === 'refuse') {
      const status = Number(url.searchParams.get('status') ?? 403)
      const body = JSON.stringify({ error: 'refused_by_upstream' })
      socket.end(
        `HTTP/1.1 ${status} Refused\r\nContent-Type: application/json\r\n` +
          'Set-Cookie: upstream=leak; Path=/\r\nWWW-Authenticate: Basic realm="upstream"\r\n' +
          `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`
      )
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      open.add(ws)
      ws.on('close', (code, reason) => {
        open.delete(ws)
        closes.push({ code, reason: reason.toString() })
      })
      if (action === 'flood') flood(ws, url)
      else if (action === 'sink') sink(ws, url.searchParams.get('hold') === '1')
      else echo(ws)
    })
  })

  const echo = (ws: WebSocket) =>
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString()
      const command = /^close (\d+) ?(.*)$/.exec(text)
      if (command) ws.close(Number(command[1]), command[2])
      else if (text === 'close') ws.close()
      else if (text === 'terminate') ws.terminate()
      else ws.send(data, { binary: isBinary })
    })

  const flood = (ws: WebSocket, url: URL) => {
    const bytes = Number(url.searchParams.get('bytes'))
    const chunk = Number(url.searchParams.get('chunk') ?? 65536)
    let sent = 0
    const more = () => {
      while (sent < bytes && ws.readyState === WebSocket.OPEN) {
        if (ws.bufferedAmount > 1024 * 1024) return void setTimeout(more, 5)
        const offset = sent % FLOOD_BLOCK.length
        const piece = FLOOD_BLOCK.subarray(offset, offset + Math.min(chunk, bytes - sent))
        sent += piece.length
        flooded += piece.length
        ws.send(piece, { binary: true })
      }
      if (sent >= bytes) ws.close(1000, 'flood done')
    }
    more()
  }

  const sink = (ws: WebSocket, hold: boolean) => {
    const hash = createHash('sha256')
    let bytes = 0
    ws.on('message', (data, isBinary) => {
      if (!isBinary && data.toString() === 'done') {
        ws.send(JSON.stringify({ bytes, sha256: hash.digest('hex') }))
        return
      }
      bytes += (data as Buffer).length
      hash.update(data as Buffer)
    })
    if (hold) {
      ws.pause()
      held.push(() => ws.resume())
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades,
    closes,
    open: () => open.size,
    flooded: () => flooded,
    release() {
      for (const go of held) go()
      held = []
    },
    close: () =>
      new Promise((resolve) => {
        for (const ws of open) ws.terminate()
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}
