/**
 * `npm run dev:worker`: the demo on the Workers runtime. The embedded IdP and demo API run here on
 * Node (oidc-provider needs Node); the BFF runs in workerd under `wrangler dev`, with the same
 * wrangler.toml as a deployment and its settings passed as `--var`s that point at the two.
 * Open the URL it prints and log in as demo / demo. `PORT` (default 8787) picks the port;
 * `BFF_DEMO_PROFILE=fapi2` runs it in the FAPI 2.0 profile (parts.ts).
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startDemoParts } from './parts.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

const port = Number(process.env.PORT ?? 8787)
const baseUrl = `http://localhost:${port}`
// BFF_DEMO_PROFILE=fapi2: the demo in the FAPI 2.0 profile, as with npm start.
const demo = await startDemoParts(baseUrl, { BFF_DEMO_PROFILE: process.env.BFF_DEMO_PROFILE })
// Dev only: a deployment keeps BFF_CLIENT_SECRET and BFF_SESSION_SECRET in `wrangler secret put`.
// The config file: its JSON itself on Workers.
const file = demo.configFile ? { BFF_CONFIG: demo.configFile } : {}
const vars = { ...demo.settings, ...file }
const args = ['dev', '--port', String(port), '--ip', '127.0.0.1']
for (const [name, value] of Object.entries(vars)) args.push('--var', `${name}:${value}`)

const at = demo.idps.map((idp) => idp.label).join(' or ')
console.log(
  `Demo on workerd: open ${baseUrl} once wrangler is ready; log in as demo / demo (${at})`
)
// wrangler itself, not through npx: a signal then reaches the process that stops workerd.
const wrangler = spawn(path.join(ROOT, 'node_modules/.bin/wrangler'), args, {
  cwd: ROOT,
  stdio: 'inherit',
  env: { WRANGLER_SEND_METRICS: 'false', ...process.env },
})

async function stop(code: number) {
  if (wrangler.exitCode === null) wrangler.kill('SIGINT')
  await demo.stop()
  process.exit(code)
}
wrangler.once('exit', (code) => void stop(code ?? 0))
process.once('SIGINT', () => void stop(0))
process.once('SIGTERM', () => void stop(0))
