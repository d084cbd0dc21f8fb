import type { Server } from 'node:http'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { createBff } from 'bff-session-broker'
import { nodeConfigFromEnv, nodeForward, nodeWebSockets } from 'bff-session-broker/node'

// The settings and the config file (BFF_CONFIG) whose routes say `"websocket": true`.
const { config, settings } = nodeConfigFromEnv(process.env)
// Relays the WebSockets the BFF accepts; the app checks every upgrade first.
const sockets = nodeWebSockets()
const app = new Hono()
app.route('/', createBff(config, { forward: nodeForward(), upgrade: sockets.upgrade }))

const server = serve({ fetch: app.fetch, port: settings.port }, (info) => {
  console.log(`listening on ${info.port}`)
})
// The server's upgrade requests go through the same app.
sockets.attach(server as Server, (request, env) => app.fetch(request, env))
