/**
 * Requests Node's HTTP parser refuses before any app code runs (a header line without a colon,
 * control characters, headers past the size limit, a bad chunk): by default Node answers with an
 * empty 400 or 431. Clients get the same `{ error, message }` JSON as every other refusal.
 */
import type { Duplex } from 'node:stream'

const ANSWERS: Record<string, [status: number, reason: string, code: string, message: string]> = {
  HPE_HEADER_OVERFLOW: [
    431,
    'Request Header Fields Too Large',
    'headers_too_large',
    'The request headers are too large.',
  ],
  HPE_URI_TOO_LONG: [414, 'URI Too Long', 'invalid_request', 'The request URL is too long.'],
}
const MALFORMED: [number, string, string, string] = [
  400,
  'Bad Request',
  'invalid_request',
  'The request is malformed.',
]

/** For `server.on('clientError', …)`: answers once and closes, or just closes a dead socket. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // A connection reset or timed out mid-request has nobody left to answer.
  if (err.code === 'ECONNRESET' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
    socket.destroy()
    return
  }
  const [status, reason, error, message] = ANSWERS[err.code ?? ''] ?? MALFORMED
  const body = JSON.stringify({ error, message })
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
      'Content-Type: application/json\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'Cache-Control: no-store\r\n' +
      'X-Content-Type-Options: nosniff\r\n' +
      'Connection: close\r\n\r\n' +
      body
  )
}
