/**
 * The Node entry of `npm start`: without BFF_ISSUER it is the demo (an embedded OpenID Provider, a
 * demo API and the SPA in public/); with BFF_ISSUER it is the production server of start.ts.
 * The published package's command is cli.ts, which never starts the demo.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import type { Env } from '../../core/config/env.ts'
import { isProduction, runServer } from './run.ts'
import { startNode, type NodeServer } from './start.ts'
import { DEMO_SPA_DIR } from './static.ts'

export { startNode, type NodeServer, type StartOptions } from './start.ts'

/** The demo: an embedded IdP and API on free loopback ports, wired to the BFF with fresh secrets. */
async function startDemo(env: Env): Promise<NodeServer> {
  const { startDemoParts } = await import('../../demo/parts.ts')
  const baseUrl = env.BFF_BASE_URL ?? `http://localhost:${Number(env.PORT ?? 3000)}`
  const demo = await startDemoParts(baseUrl, env)
  // The routes and their policies come in a config file, which BFF_CONFIG names on Node.
  const dir = demo.configFile ? await mkdtemp(path.join(tmpdir(), 'bff-demo-')) : undefined
  const config = dir ? { BFF_CONFIG: path.join(dir, 'bff.json') } : {}
  if (dir) await writeFile(config.BFF_CONFIG!, demo.configFile!)
  // The demo SPA from public/, unless BFF_SPA_DIR names another.
  const bff = await startNode({ ...env, ...demo.settings, ...config }, { spaDir: DEMO_SPA_DIR })
  return {
    ...bff,
    async close() {
      await bff.close()
      await demo.stop()
      if (dir) await rm(dir, { recursive: true, force: true })
    },
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await runServer((env) => (isProduction(env) ? startNode(env) : startDemo(env)))
}
