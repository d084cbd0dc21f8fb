import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createBff, optionsFromEnv } from 'bff-session-broker'
import { nodeForward } from 'bff-session-broker/node'

const app = new Hono()
app.get('/hello', (c) => c.text('Hello from my own route'))
app.route('/', createBff(optionsFromEnv(process.env), { forward: nodeForward() }))

serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 3000) }, (info) => {
  console.log(`listening on ${info.port}`)
})
