/**
 * Browser end-to-end tests: Debian's Chromium (never Playwright's bundled download) against the BFF
 * with the real IdP on loopback. One project per target runtime, picked by `E2E_TARGETS` (default
 * `node,workerd`: the Node server and the Worker in workerd).
 */
import { defineConfig } from '@playwright/test'
import { TARGETS, type Target } from './stack.ts'
import type { E2eOptions } from './fixtures.ts'

const targets = (process.env.E2E_TARGETS || 'node,workerd').split(',').map((name) => {
  const target = name.trim() as Target
  if (!TARGETS.includes(target)) {
    throw new Error(`E2E_TARGETS: unknown target "${name}" (expected ${TARGETS.join(', ')})`)
  }
  return target
})

export default defineConfig<E2eOptions>({
  testDir: '.',
  // Builds the Worker bundle once when a workerd project runs.
  globalSetup: './global-setup.ts',
  outputDir: 'artifacts/test-results',
  // Silent refresh waits out a real access token; everything else takes a second or two.
  timeout: 30_000,
  expect: { timeout: 5_000 },
  forbidOnly: !!process.env.CI,
  workers: 2,
  reporter: [['list'], ['html', { outputFolder: 'artifacts/report', open: 'never' }]],
  use: {
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      // Without the background-networking flags Chromium keeps dialling out, and the closed network
      // refuses it; --no-sandbox because CI runs as root in a container.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  projects: targets.map((target) => ({ name: target, use: { target } })),
})
