/**
 * A server process's life, shared by `npm start` (server.ts) and the `bff-session-broker` command
 * (cli.ts): start, print where to go, stop on SIGINT/SIGTERM, and on a bad start print the problem
 * and exit 1.
 */
import { ConfigError, type Env } from '../../core/config/env.ts'
import type { NodeServer } from './start.ts'

/** Settings that name an IdP (the environment's or the config file's): a production server. */
export function isProduction(env: Env): boolean {
  return Boolean(env.BFF_ISSUER || env.BFF_CONFIG)
}

export async function runServer(start: (env: Env) => Promise<NodeServer>): Promise<void> {
  const env = process.env as Env
  try {
    const server = await start(env)
    if (isProduction(env)) console.log(`BFF listening on ${server.url}`)
    else {
      const profile = env.BFF_DEMO_PROFILE?.trim()
      console.log(`Demo running${profile ? ` in profile ${profile}` : ''}: log in as demo / demo`)
    }
    // Last, where the eye lands: cookies belong to this host (another loopback name for the same
    // port is redirected here; any other is not).
    console.log(`Open ${server.config.baseUrl}`)
    const stop = () => server.close().then(() => process.exit(0))
    process.once('SIGINT', stop)
    process.once('SIGTERM', stop)
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) console.error(`bff: invalid setting: ${problem}`)
    } else {
      console.error(`bff: failed to start: ${err instanceof Error ? err.message : String(err)}`)
    }
    process.exit(1)
  }
}
