/**
 * An HTTP/1.1 client over a bare TCP socket, for requests no well-behaved client would send: raw
 * bytes in the request target, control characters, duplicate or malformed headers, conflicting
 * framing. fetch and node:http normalise or refuse such input before it leaves the process.
 */
import { connect } from 'node:net'

export interface RawRequest {
  method: string
  /** The request target exactly as sent (bytes of its UTF-8 encoding). */
  target: string
  /** Header lines in order; duplicates allowed. A `host` header is not added for you. */
  headers: Array<[string, string]>
  body?: Uint8Array
  /** `length` sends Content-Length, `chunked` Transfer-Encoding, `both` both (a smuggling shape). */
  framing?: 'length' | 'chunked' | 'both' | 'none'
}

export interface RawResponse {
  status: number
  /** Lower-case header names; repeated headers keep every value. */
  headers: Array<[string, string]>
  header(name: string): string | undefined
  body: string
  /** Everything received, as latin1 text (one character per byte). */
  raw: string
}

/** Sends one request on a new connection (`Connection: close`) and reads the whole answer. */
export function rawRequest(
  port: number,
  request: RawRequest,
  { timeoutMs = 10_000 }: { timeoutMs?: number } = {}
): Promise<RawResponse> {
  const body = request.body ?? new Uint8Array()
  const framing = request.framing ?? (body.length > 0 ? 'length' : 'none')
  const lines = [`${request.method} ${request.target} HTTP/1.1`]
  for (const [name, value] of request.headers) lines.push(`${name}: ${value}`)
  lines.push('connection: close')
  if (framing === 'length' || framing === 'both') lines.push(`content-length: ${body.length}`)
  if (framing === 'chunked' || framing === 'both') lines.push('transfer-encoding: chunked')
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'utf8')
  const payload =
    framing === 'chunked' || framing === 'both'
      ? Buffer.concat([
          body.length ? Buffer.from(`${body.length.toString(16)}\r\n`) : Buffer.alloc(0),
          body.length ? Buffer.from(body) : Buffer.alloc(0),
          Buffer.from(body.length ? '\r\n0\r\n\r\n' : '0\r\n\r\n'),
        ])
      : Buffer.from(body)

  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    const socket = connect({ port, host: '127.0.0.1' })
    socket.setTimeout(timeoutMs, () => {
      socket.destroy(new Error(`no complete answer within ${timeoutMs} ms`))
    })
    // write, not end: a half-closed socket reads to some servers as a client that went away.
    // `Connection: close` makes the server close once it has answered.
    socket.on('connect', () => socket.write(Buffer.concat([head, payload])))
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', (err) => {
      // The server may answer and close before reading everything we sent: keep its answer.
      if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' && chunks.length) return
      reject(err)
    })
    socket.on('close', () => {
      if (!chunks.length) return reject(new Error('connection closed without an answer'))
      try {
        resolve(parseResponse(Buffer.concat(chunks)))
      } catch (err) {
        reject(err)
      }
    })
  })
}

function parseResponse(data: Buffer): RawResponse {
  const end = data.indexOf('\r\n\r\n')
  if (end < 0) throw new Error(`incomplete response head: ${data.toString('latin1').slice(0, 200)}`)
  const [statusLine = '', ...headerLines] = data.subarray(0, end).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1])
  if (!status) throw new Error(`bad status line: ${statusLine}`)
  const headers = headerLines.map((line): [string, string] => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
  })
  const header = (name: string) => headers.find(([n]) => n === name)?.[1]
  let body = data.subarray(end + 4)
  if (/chunked/i.test(header('transfer-encoding') ?? '')) body = dechunk(body)
  return { status, headers, header, body: body.toString('utf8'), raw: data.toString('latin1') }
}

function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at)
    if (lineEnd < 0) break
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16)
    if (!size) break
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts)
}
