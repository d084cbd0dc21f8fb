import { startNode } from 'bff-session-broker/node'

// The server of `npx bff-session-broker`, from the same settings, in a program of your own.
const server = await startNode(process.env)
console.log(`BFF listening on ${server.url}`)
process.once('SIGTERM', () => void server.close())
