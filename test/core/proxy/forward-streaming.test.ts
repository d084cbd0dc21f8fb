/**
 * `forward` over fetch (the Workers transport, and Node's for requests from outside a Node
 * server) with answers streamed the way real APIs stream them: chunked pieces of 64 KiB written
 * with backpressure, up to 20 MB, read fast and slowly. test/integration/streaming.test.ts drives
 * the same through the whole BFF on both runtimes.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { forward } from '../../../src/core/proxy/forward.ts'
import {
  downloadSha256,
  readDigest,
  startStreamUpstream,
  type StreamUpstream,
} from '../../helpers/stream-upstream.ts'

let files: StreamUpstream
beforeAll(async () => {
  files = await startStreamUpstream()
})
afterAll(() => files.close())

const options = {
  accessToken: 'token',
  baseUrl: 'https://app.example.com',
  timeoutMs: 10_000,
  fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init),
}

for (const size of [0, 65537, 200_000, 20 * 1024 * 1024]) {
  for (const pauseMs of [0, 1]) {
    it(`passes ${size} bytes chunked to a ${pauseMs ? 'slow' : 'fast'} reader`, async () => {
      const target = new URL(`${files.url}/download?size=${size}`)
      const response = await forward(new Request('http://bff/api/download'), target, options)
      expect(response.status).toBe(200)
      // 20 MB read slowly would take minutes: the slow reader reads the smaller sizes only.
      expect(await readDigest(response, size > 5e6 ? 0 : pauseMs)).toEqual({
        bytes: size,
        sha256: downloadSha256(size),
      })
    }, 60_000)
  }
}
