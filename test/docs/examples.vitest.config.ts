/**
 * A vitest of its own for the docs' example test files (docs/examples/*.test.ts), started by
 * test/docs/examples.test.ts: there the package's names (`bff-session-broker/testing`, …) resolve
 * to the sources, by the same map tsconfig.json gives the type check. The repository's own
 * vitest.config.ts never runs these files.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const paths: Record<string, string[]> = JSON.parse(
  readFileSync(path.join(root, 'tsconfig.json'), 'utf8')
).compilerOptions.paths

export default defineConfig({
  root,
  resolve: {
    alias: Object.entries(paths).map(([name, [target = '']]) => ({
      find: new RegExp(`^${name.replace(/[/-]/g, '\\$&')}$`),
      replacement: path.join(root, target),
    })),
  },
  test: {
    include: ['docs/examples/**/*.test.ts'],
    testTimeout: 60_000,
  },
})
