/**
 * The floor of this BFF's stack: Hono on @hono/node-server forwarding with undici's dispatcher
 * and a fixed bearer token, with no session, no policy, no headers cleaned. What the BFF costs
 * beyond this is its own work; what this costs beyond the bare proxy is the stack's.
 */
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import type { AddressInfo } from 'node:net'
import { Agent, type Dispatcher } from 'undici'
import { serveParent } from './child.ts'

const upstream = new URL(process.env.BENCH_UPSTREAM ?? 'http://127.0.0.1:4000')
const agent = new Agent()
const app = new Hono()
app.use('*', async (c) => {
  const { statusCode, headers, body } = await agent.request({
    origin: upstream.origin,
    path: c.req.path,
    method: c.req.method as Dispatcher.HttpMethod,
    headers: { authorization: 'Bearer bench-fixed-token' },
  })
  const bytes = Buffer.from(await body.arrayBuffer())
  return new Response(bytes, {
    status: statusCode,
    headers: { 'content-type': String(headers['content-type']) },
  })
})
const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => {
  const { port } = server.address() as AddressInfo
  serveParent(`http://127.0.0.1:${port}`, {}, async () => {
    server.close()
  })
})
