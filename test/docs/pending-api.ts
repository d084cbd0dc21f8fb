/**
 * The package's `.` entry as the docs name it, until lib/options lands: `optionsFromEnv` is the
 * new name of `parseConfig`. tsconfig.json maps `bff-session-broker` here only while src/index.ts
 * lacks it; test/docs/snippets.test.ts fails once it has it, so this file cannot outlive its use.
 */
export * from '../../src/index.ts'
export { parseConfig as optionsFromEnv } from '../../src/index.ts'
