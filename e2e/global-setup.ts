/**
 * Once per `npm run test:e2e`, when a `workerd` project runs: builds the Worker bundle the way a
 * deployment does (`npm run build:worker`) and copies it out of dist/ into a directory of its own
 * under artifacts/, so a rebuild elsewhere (the vitest workerd project builds the same dist/worker)
 * cannot change it under a running suite. The build reaches the Playwright workers as
 * `E2E_WORKER_BUILD` (JSON), read by `startBff` in stack.ts.
 */
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FullConfig } from '@playwright/test'
import { buildWorker } from '../test/adapters/workers/build.ts'
import { WORKER_BUILD_ENV } from './stack.ts'

export default async function globalSetup(config: FullConfig) {
  const targets = config.projects.map((project) => (project.use as { target?: string }).target)
  if (!targets.includes('workerd') || process.env[WORKER_BUILD_ENV]) return

  const build = await buildWorker()
  // Under the repository, not the system's temp dir: Miniflare names modules by their path relative
  // to the working directory, and workerd refuses a module name that climbs out of it with "..".
  const artifacts = fileURLToPath(new URL('./artifacts/', import.meta.url))
  await mkdir(artifacts, { recursive: true })
  const dir = await mkdtemp(path.join(artifacts, 'worker-'))
  const scriptPath = path.join(dir, path.basename(build.scriptPath))
  await copyFile(build.scriptPath, scriptPath)
  await copyFile(`${build.scriptPath}.map`, `${scriptPath}.map`).catch(() => {})
  process.env[WORKER_BUILD_ENV] = JSON.stringify({ ...build, scriptPath })

  return async () => {
    delete process.env[WORKER_BUILD_ENV]
    await rm(dir, { recursive: true, force: true })
  }
}
