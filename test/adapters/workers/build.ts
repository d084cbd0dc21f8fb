/**
 * Builds the Worker bundle the way a deployment does (`npm run build:worker`) and reads what
 * Miniflare needs from wrangler.toml. No vitest in here: the e2e suite uses it too.
 */
import { execFile } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..')

/** The bundle and the options from wrangler.toml; plain data, so vitest can hand it to test files. */
export interface WorkerBuild {
  scriptPath: string
  compatibilityDate: string
  compatibilityFlags: string[]
  /** Binding name -> class, as in wrangler.toml. */
  durableObjects: Record<string, { className: string; useSQLite?: boolean }>
  /** wrangler.toml's `[vars]`. */
  bindings: Record<string, string>
  /** wrangler.toml's `[assets]` as Miniflare options (the demo SPA from public/). */
  assets?: Record<string, unknown>
}

export async function buildWorker(): Promise<WorkerBuild> {
  await promisify(execFile)('npm', ['run', '--silent', 'build:worker'], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' },
  })
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'))
  return {
    scriptPath: path.join(ROOT, 'dist/worker/worker.js'),
    compatibilityDate: workerOptions.compatibilityDate!,
    compatibilityFlags: workerOptions.compatibilityFlags ?? [],
    durableObjects: Object.fromEntries(
      Object.entries(workerOptions.durableObjects ?? {}).map(([binding, value]) => {
        const designator = value as string | { className: string; useSQLite?: boolean }
        const { className, useSQLite } =
          typeof designator === 'string' ? { className: designator, useSQLite: true } : designator
        return [binding, { className, useSQLite }]
      })
    ),
    bindings: (workerOptions.bindings ?? {}) as Record<string, string>,
    assets: workerOptions.assets as Record<string, unknown> | undefined,
  }
}
