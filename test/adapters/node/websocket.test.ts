/**
 * `nodeWebSockets()` in a host app (createBff mounted in Hono, served by @hono/node-server), on a
 * route that needs no session (`token: "none"`), so no IdP is asked: the server-wide cap counts
 * the sockets no session's limit counts, an upgrade through `app.request()` (no server) answers
 * 501, and `close()` closes what is open.
 */
import { serve, type ServerType } from '@hono/node-server'
import { Hono } from 'hono'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createBff } from '../../../src/core/app.ts'
import { nodeWebSockets, type NodeWebSockets } from '../../../src/adapters/node/websocket.ts'
import { closed, nextMessage, openSocket, socketOf } from '../../helpers/ws-client.ts'
import { startWsUpstream, type WsUpstream } from '../../helpers/ws-upstream.ts'

let upstream: WsUpstream
let sockets: NodeWebSockets
let server: ServerType
let app: Hono
let bff: { url: string; baseUrl: string }

beforeAll(async () => {
  upstream = await startWsUpstream()
  sockets = nodeWebSockets({ maxSockets: 2 })
  app = new Hono()
  app.route(
    '/',
    createBff(
      {
        // Never asked: the route sends no token and needs no session.
        issuer: 'https://idp.invalid',
        clientId: 'bff',
        clientSecret: 'secret',
        baseUrl: 'http://127.0.0.1',
        sessionSecret: 's'.repeat(32),
        routes: [
          { prefix: '/open/', upstream: `${upstream.url}/ws/`, token: 'none', websocket: true },
        ],
      },
      { upgrade: sockets.upgrade, log: () => {} }
    )
  )
  server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s))
  })
  sockets.attach(server as Server, (request, env) => app.fetch(request, env))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  bff = { url, baseUrl: 'http://127.0.0.1' }
})
afterAll(async () => {
  await sockets?.close()
  await new Promise((resolve) => server?.close(resolve))
  await upstream?.close()
})

it('caps the sockets of the server, sessionless ones included: 429 beyond', async () => {
  const open = await Promise.all([1, 2].map(() => socketOf(openSocket(bff, '/open/echo'))))
  expect(sockets.size).toBe(2)
  const before = upstream.upgrades.length
  expect(await openSocket(bff, '/open/echo')).toMatchObject({
    status: 429,
    body: { error: 'too_many_connections' },
  })
  expect(upstream.upgrades.length).toBe(before)
  const one = closed(open[0]!)
  open[0]!.close()
  await one
  await expect.poll(() => sockets.size).toBe(1)
  const again = await socketOf(openSocket(bff, '/open/echo'))
  again.send('room again')
  expect((await nextMessage(again)).data.toString()).toBe('room again')
  const ends = [open[1]!, again].map(closed)
  await sockets.close()
  for (const end of await Promise.all(ends)) expect(end.code).toBe(1001)
})

it('answers 501 to an upgrade that did not come through the server (app.request)', async () => {
  const response = await app.request('http://127.0.0.1/open/echo', {
    headers: { upgrade: 'websocket', connection: 'Upgrade', origin: 'http://127.0.0.1' },
  })
  expect(response.status).toBe(501)
  expect(await response.json()).toMatchObject({ error: 'not_supported' })
})
