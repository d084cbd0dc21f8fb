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

export default tseslint.config(
  { ignores: ['node_modules', 'dist', '.wrangler', 'e2e/artifacts', 'bench/results'] },
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
  }
)
