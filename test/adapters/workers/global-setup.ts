/**
 * Once per `vitest run` for the workerd project: builds the Worker bundle the way a deployment does
 * and hands its path and wrangler.toml's settings to every test file (`inject('workerBuild')`).
 */
import type { TestProject } from 'vitest/node'
import { buildWorker } from './build.ts'

export default async function setup(project: TestProject) {
  project.provide('workerBuild', await buildWorker())
}
