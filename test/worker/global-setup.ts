/**
 * Once per `vitest run` for the workerd project: builds the Worker bundle the way a deployment does
 * (`npm run build:worker`) and hands its path and wrangler.toml's settings to every test file.
 */
import { execFile } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { TestProject } from 'vitest/node'
import { unstable_getMiniflareWorkerOptions } from 'wrangler'
import type { WorkerBuild } from './workerd.ts'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export default async function setup(project: TestProject) {
  await promisify(execFile)('npm', ['run', '--silent', 'build:worker'], {
    cwd: ROOT,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: 'true', NO_COLOR: '1' },
  })
  const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(ROOT, 'wrangler.toml'))
  const build: WorkerBuild = {
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
  }
  project.provide('workerBuild', build)
}
