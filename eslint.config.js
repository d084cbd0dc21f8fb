import tseslint from 'typescript-eslint'

// The core must run on any Web-standard runtime: Node, Workers, Deno. This rule keeps
// runtime-specific modules and globals out of it so the boundary is checked, not hoped for.
const runtimeSpecific = {
  patterns: [
    {
      group: ['node:*'],
      message: 'src/core is runtime-agnostic: use Web APIs (Node code lives in src/adapters/node).',
    },
    {
      group: ['ioredis'],
      message: 'src/core is runtime-agnostic: Redis code lives in src/adapters/node.',
    },
    {
      group: ['cloudflare:*'],
      message: 'src/core is runtime-agnostic: Workers code lives in src/adapters/workers.',
    },
  ],
}

// A store is storage only: token refresh and its coordination sit above it and are handed in (a
// RefreshCoordinator to createBff, a refresher to the session Durable Object by the Worker entry),
// so storage code never imports settings, OIDC or token management.
const storageOnly = {
  group: ['**/config/*', '**/oidc/*', '**/tokens/*'],
  message: 'A store is storage only: settings, OIDC and token refresh are handed in from above.',
}
const coreStorageFiles = ['src/core/session/types.ts', 'src/core/session/stores/**/*.ts']
const adapterStorageFiles = [
  'src/adapters/node/redis-store.ts',
  'src/adapters/workers/session-object.ts',
  'src/adapters/workers/session-index-object.ts',
  'src/adapters/workers/session-store.ts',
]

export default tseslint.config(
  {
    ignores: [
      'node_modules',
      'dist',
      '.wrangler',
      'e2e/artifacts',
      'bench/results',
      'bench/.build',
    ],
  },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', runtimeSpecific],
      'no-restricted-globals': [
        'error',
        {
          name: 'process',
          message: 'The core never reads process: settings come through optionsFromEnv.',
        },
        { name: 'Buffer', message: 'Use Uint8Array, TextEncoder and btoa in the core.' },
      ],
    },
  },
  {
    files: coreStorageFiles,
    rules: {
      // Replaces the core's rule for these files: the runtime patterns again, and storage's.
      'no-restricted-imports': ['error', { patterns: [...runtimeSpecific.patterns, storageOnly] }],
    },
  },
  {
    files: adapterStorageFiles,
    rules: { 'no-restricted-imports': ['error', { patterns: [storageOnly] }] },
  }
)
