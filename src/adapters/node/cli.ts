#!/usr/bin/env node
/**
 * `bff-session-broker`: the production server from the environment (README, Settings). It never
 * starts the demo: without BFF_ISSUER there is nothing to log in at, so it says so and exits 1.
 */
import { ConfigError } from '../../core/config/env.ts'
import { isProduction, runServer } from './run.ts'
import { startNode } from './start.ts'

await runServer(async (env) => {
  if (!isProduction(env)) {
    throw new ConfigError([
      'BFF_ISSUER (or BFF_CONFIG) must name your OpenID Provider (the demo starts only from a clone: npm start)',
    ])
  }
  return startNode(env)
})
