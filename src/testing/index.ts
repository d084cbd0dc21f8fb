/**
 * The package's `./testing` entry: the session store contract the built-in stores pass, for your
 * own `SessionStore`. Call `testStore(name, makeStore)` in a vitest file; it needs vitest (an
 * optional peer dependency of this package).
 */
export { testStore, makeSession, randomId, sleep, type StoreUnderTest } from './store-contract.ts'
export { testForwarder } from './forwarder-contract.ts'
export * from './proxy-headers.ts'
