/** Both transports the BFF ships meet the forwarder contract of the `./testing` entry. */
import { forward, type Forwarder } from '../../src/core/proxy/forward.ts'
import { nodeForward } from '../../src/adapters/node/upstream.ts'
import { testForwarder } from '../../src/testing/index.ts'

const viaFetch: Forwarder = (c, target, options) =>
  forward(c.req.raw, target, { ...options, fetch: globalThis.fetch })

testForwarder('forward over fetch', () => viaFetch)
testForwarder('nodeForward', () => nodeForward())
