import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    // e2e/ holds Playwright specs, run by `npm run test:e2e`, not by vitest.
    include: ['test/**/*.test.ts'],
  },
})
