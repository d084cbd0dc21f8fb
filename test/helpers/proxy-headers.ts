/** The header lists moved into the package's `./testing` entry; tests keep importing them here. */
export * from '../../src/testing/proxy-headers.ts'
