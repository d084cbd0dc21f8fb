/**
 * A small HTTP proxy in front of the real test IdP, on its own loopback port, so a test can see
 * and change what the BFF gets from the IdP as a misbehaving deployment would answer it: a token
 * endpoint refusing with an empty 400, a discovery document behind a redirect, HTML instead of JSON.
 * Requests pass through unchanged (the `Host` header too, from which oidc-provider builds its
 * endpoint URLs) unless `intercept` answers them.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface FrontRequest {
  method: string
  /** Path and query as received. */
  url: string
  headers: IncomingMessage['headers']
  /** The whole request body (the IdP's requests are small forms). */
  body: string
}

/** Answers the request itself (true), or lets it through (false); may rewrite `req.url` first. */
export type Intercept = (req: FrontRequest, res: ServerResponse) => boolean

export interface IdpFront {
  url: string
  port: number
  /** Where requests go: the IdP's port, set once it listens. */
  forwardTo(port: number): void
  intercept: Intercept | undefined
  /** Every request seen, in order. */
  seen: FrontRequest[]
  close(): Promise<void>
}

export async function startIdpFront(): Promise<IdpFront> {
  let target: number | undefined
  const seen: FrontRequest[] = []
  const front: IdpFront = {
    url: '',
    port: 0,
    forwardTo(port) {
      target = port
    },
    intercept: undefined,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const seenReq: FrontRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      body: Buffer.concat(chunks).toString(),
    }
    seen.push(seenReq)
    if (front.intercept?.(seenReq, res)) return
    if (target === undefined) {
      res.writeHead(502).end('no IdP behind the front yet')
      return
    }
    const upstream = request(
      {
        host: '127.0.0.1',
        port: target,
        method: seenReq.method,
        path: seenReq.url,
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      }
    )
    upstream.on('error', () => res.destroy())
    upstream.end(chunks.length ? Buffer.concat(chunks) : undefined)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  front.port = (server.address() as AddressInfo).port
  front.url = `http://127.0.0.1:${front.port}`
  return front
}

/** Whether this is a refresh-token grant at the token endpoint. */
export function isRefreshGrant(req: FrontRequest): boolean {
  return (
    req.method === 'POST' &&
    new URL(req.url, 'http://x').pathname === '/token' &&
    new URLSearchParams(req.body).get('grant_type') === 'refresh_token'
  )
}
