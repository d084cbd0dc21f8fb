/**
 * A `ws` client standing in for a browser page's WebSocket: it sends what a browser sends on an
 * upgrade (`Origin`, the session cookie; no `X-CSRF`, which the WebSocket API cannot set).
 */
import { WebSocket } from 'ws'
import type { CookieJar } from './http.ts'

/** The BFF the client talks to: where it listens, and its public origin. */
interface Bff {
  url: string
  baseUrl: string
}

/** What the client got: an open socket, or the refusal's status and JSON body. */
export type Opened =
  { ws: WebSocket } | { status: number; body: { error?: string }; headers: Headers }

/**
 * Opens a socket to the BFF as a browser page would, from `origin` (default: the BFF's own) with
 * the jar's cookies; cookies set on the 101 go into the jar.
 */
export function openSocket(
  stack: Bff,
  path: string,
  options: { jar?: CookieJar; origin?: string | null; protocols?: string[] } = {}
): Promise<Opened> {
  const headers: Record<string, string> = {}
  const origin = options.origin === undefined ? new URL(stack.baseUrl).origin : options.origin
  if (origin !== null) headers.origin = origin
  const cookies = Object.entries(options.jar?.cookies(stack.url) ?? {})
  if (cookies.length) headers.cookie = cookies.map(([name, value]) => `${name}=${value}`).join('; ')
  const url = `${stack.url.replace(/^http/, 'ws')}${path}`
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options.protocols ?? [], { headers, perMessageDeflate: false })
    // A browser keeps the cookies of a 101 answer (a refreshed session in the cookie store).
    ws.once('upgrade', (res) => {
      for (const line of res.headers['set-cookie'] ?? []) options.jar?.setCookie(stack.url, line)
    })
    ws.once('open', () => resolve({ ws }))
    ws.once('unexpected-response', (_req, res) => {
      let text = ''
      res.on('data', (chunk: Buffer) => (text += chunk))
      res.on('end', () => {
        const answer = new Headers()
        for (let i = 0; i < res.rawHeaders.length; i += 2)
          answer.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!)
        resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {}, headers: answer })
      })
    })
    ws.once('error', reject)
  })
}

/** The socket of an upgrade that must succeed. */
export async function socketOf(opened: Promise<Opened>): Promise<WebSocket> {
  const result = await opened
  if (!('ws' in result)) throw new Error(`refused: ${result.status} ${JSON.stringify(result.body)}`)
  return result.ws
}

/** The next message of `ws`, with whether it was binary. */
export function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) =>
    ws.once('message', (data, isBinary) => resolve({ data: data as Buffer, isBinary }))
  )
}

/** How `ws` closed, and how long after this call. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string; ms: number }> {
  const start = performance.now()
  return new Promise((resolve) =>
    ws.once('close', (code, reason) =>
      resolve({ code, reason: reason.toString(), ms: performance.now() - start })
    )
  )
}

export async function until(done: () => boolean, ms = 10_000): Promise<void> {
  for (const start = Date.now(); !done();) {
    if (Date.now() - start > ms) throw new Error(`still not so after ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
