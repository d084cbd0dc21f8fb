/**
 * An upstream that streams large answers the way real APIs do, for streaming tests and the bench:
 * `GET /download?size=N` writes `size` bytes of a fixed pattern in pieces of `chunk` bytes
 * (default 64 KiB), each waiting for `drain` when the socket is full. Without `length=1` the answer
 * is chunked (no Content-Length), with it length-delimited; `gzip=1` compresses on the fly.
 * `POST|PUT /upload` reads the whole body and answers `{ bytes, sha256 }`. With `hold=1` a download
 * waits before its headers until `release()`.
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Writable } from 'node:stream'
import type { AddressInfo, Socket } from 'node:net'
import { createGzip } from 'node:zlib'

/** The content of every download: this block over and over, cut at `size`. */
const BLOCK = Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => (i * 2654435761) >>> 24))

/** The bytes `/download?size=N` sends, as a SHA-256 hex digest. */
export function downloadSha256(size: number): string {
  const hash = createHash('sha256')
  for (let sent = 0; sent < size; sent += BLOCK.length) {
    hash.update(BLOCK.subarray(0, Math.min(BLOCK.length, size - sent)))
  }
  return hash.digest('hex')
}

export interface StreamUpstream {
  url: string
  /** Downloads whose writer is still sending (the reader has not had everything). */
  active(): number
  /** Downloads waiting for `release()` (`hold=1`). */
  held(): number
  /** Lets every held download answer. */
  release(): void
  close(): Promise<void>
}

export async function startStreamUpstream(): Promise<StreamUpstream> {
  const sockets = new Set<Socket>()
  let active = 0
  let held: Array<() => void> = []
  const server = createServer((req, res) => {
    if (new URL(req.url ?? '/', 'http://upstream').searchParams.get('hold') === '1') {
      req.resume()
      // Unless its caller has gone meanwhile.
      held.push(() => res.destroyed || answer(req, res))
      return
    }
    answer(req, res)
  })
  const answer = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://upstream')
    const param = (name: string) => url.searchParams.get(name)
    if (url.pathname.endsWith('/upload')) {
      const hash = createHash('sha256')
      let bytes = 0
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length
        hash.update(chunk)
      })
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') }))
      })
      return
    }
    req.resume()
    const size = Number(param('size') ?? 0)
    const chunk = Number(param('chunk') ?? 65536)
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
    if (param('length') === '1') headers['content-length'] = String(size)
    if (param('gzip') === '1') headers['content-encoding'] = 'gzip'
    res.writeHead(200, headers)
    active++
    const done = () => active--
    res.once('close', done)
    if (param('gzip') === '1') {
      const gzip = createGzip()
      gzip.pipe(res)
      res.once('close', () => gzip.destroy())
      void writePattern(gzip, size, chunk)
    } else void writePattern(res, size, chunk)
  }
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    active: () => active,
    held: () => held.length,
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

/** Writes `size` bytes of the pattern in pieces of `chunk`, honouring backpressure, and ends. */
export async function writePattern(out: Writable, size: number, chunk: number) {
  let sent = 0
  while (sent < size && !out.destroyed) {
    const offset = sent % BLOCK.length
    const piece = BLOCK.subarray(
      offset,
      offset + Math.min(chunk, size - sent, BLOCK.length - offset)
    )
    sent += piece.length
    if (!out.write(piece)) {
      await new Promise<void>((resolve) => {
        const go = () => {
          out.off('drain', go)
          out.off('close', go)
          resolve()
        }
        out.on('drain', go)
        out.on('close', go)
      })
    }
  }
  out.end()
}

/** Reads a whole body into a digest, pausing `pauseMs` after every piece (a slow reader). */
export async function readDigest(
  response: Response,
  pauseMs = 0
): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256')
  let bytes = 0
  const reader = response.body!.getReader()
  for (let next = await reader.read(); !next.done; next = await reader.read()) {
    hash.update(next.value)
    bytes += next.value.length
    if (pauseMs) await new Promise((resolve) => setTimeout(resolve, pauseMs))
  }
  return { bytes, sha256: hash.digest('hex') }
}
