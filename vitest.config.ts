import { fileURLToPath } from 'node:url'
import { configDefaults, defineConfig } from 'vitest/config'

// One suite, two targets: every test runs on Node, and the integration tests (test/integration)
// run a second time against the Worker bundle in workerd, together with the Worker's own tests
// (test/adapters/workers). test/integration/harness.ts reads BFF_TEST_TARGET to start the right
// one.
export default defineConfig({
  test: {
    // Starting a stack (IdP, upstream, BFF or workerd) takes a second or two; on 2 busy cores more.
    hookTimeout: 30_000,
    // Many tests start one inside the test itself (workerd per settings case, a stack per store,
    // a BFF against a hostile IdP) or log in through the IdP's pages several times: vitest's 5 s
    // default failed them on a loaded machine. Only a hang should fail a test on time.
    testTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          // e2e/ holds Playwright specs, run by `npm run test:e2e`, not by vitest.
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/adapters/workers/**'],
          env: { BFF_TEST_TARGET: 'node' },
        },
      },
      {
        extends: true,
        test: {
          name: 'workerd',
          include: ['test/integration/**/*.test.ts', 'test/adapters/workers/**/*.test.ts'],
          // Node instances sharing Redis; test/adapters/workers/isolates.test.ts is its Workers
          // counterpart.
          exclude: [...configDefaults.exclude, 'test/integration/cluster.test.ts'],
          env: { BFF_TEST_TARGET: 'workerd' },
          globalSetup: ['test/adapters/workers/global-setup.ts'],
          setupFiles: ['test/adapters/workers/setup.ts'],
        },
        resolve: {
          // Lets Node import the Durable Object store's client half
          // (test/adapters/workers/stores.test.ts).
          alias: {
            'cloudflare:workers': fileURLToPath(
              new URL('./test/adapters/workers/cloudflare-workers-stub.ts', import.meta.url)
            ),
          },
        },
      },
    ],
  },
})
