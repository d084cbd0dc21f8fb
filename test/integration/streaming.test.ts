/**
 * Large and streamed bodies through the whole BFF, as a browser gets them: a logged-in session,
 * an upstream that writes its answer in 64 KiB pieces honouring backpressure (chunked, or with a
 * Content-Length, or gzip-compressed on the fly), sizes from nothing to 20 MB, fast and slow
 * readers, uploads both ways, and other calls answered while a download is under way.
 *
 * The Node transport once hung here for good on any chunked answer of 200 KB or more (undici
 * reports an empty piece of body when it resumes inside a chunk; pausing on it paused forever),
 * which no earlier test saw: their large bodies were length-delimited, or their chunked ones
 * small enough never to pause.
 */
import { createHash, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CookieJar } from '../helpers/http.ts'
import {
  downloadSha256,
  readDigest,
  startStreamUpstream,
  type StreamUpstream,
} from '../helpers/stream-upstream.ts'
import { CSRF, SERVER_STORE, startStack, type Stack } from './harness.ts'

const MB = 1024 * 1024

/** Waits until `done()` holds, up to 20 s (a slow machine, not a hang). */
async function until(done: () => boolean): Promise<void> {
  for (const start = Date.now(); !done();) {
    if (Date.now() - start > 20_000) throw new Error('still not so after 20 s')
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

for (const store of ['cookie', SERVER_STORE] as const) {
  describe(`streamed answers through the BFF (${store} store)`, () => {
    let files: StreamUpstream
    let stack: Stack
    let jar: CookieJar

    beforeAll(async () => {
      files = await startStreamUpstream()
      stack = await startStack({ store, env: { BFF_API: `/files/=${files.url}/` } })
      jar = stack.jar()
      expect((await stack.login(jar)).status).toBe(302)
    })
    afterAll(async () => {
      await stack?.close()
      await files?.close()
    })

    const download = async (query: string): Promise<Response> => {
      const path = `/files/download?${query}`
      try {
        return await jar.get(path, { headers: CSRF })
      } catch {
        // Miniflare now and then closes a kept-alive connection just as the next request reuses
        // it, before any answer; a browser sends a GET again then, and so does this test.
        return jar.get(path, { headers: CSRF })
      }
    }

    for (const size of [0, 1, 65535, 65536, 65537, 200_000, MB + 7, 20 * MB]) {
      for (const [mode, query] of [
        ['chunked', ''],
        ['length-delimited', '&length=1'],
      ] as const) {
        it(`passes ${size} bytes, ${mode}, intact`, { timeout: 60_000 }, async () => {
          const response = await download(`size=${size}${query}`)
          expect(response.status).toBe(200)
          expect(await readDigest(response)).toEqual({ bytes: size, sha256: downloadSha256(size) })
        })
      }
    }

    it(
      'passes a 5 MB answer written in 1 KiB pieces and one gzip-compressed on the fly',
      { timeout: 60_000 },
      async () => {
        for (const query of ['size=5242880&chunk=1024', 'size=5242880&gzip=1']) {
          const response = await download(query)
          expect(response.status).toBe(200)
          expect(await readDigest(response)).toEqual({
            bytes: 5 * MB,
            sha256: downloadSha256(5 * MB),
          })
        }
      }
    )

    it('serves a slow reader intact, and other calls meanwhile', { timeout: 60_000 }, async () => {
      const slow = await download(`size=${8 * MB}`)
      const reader = slow.body!.getReader()
      const first = await reader.read()
      // The download waits on its reader; the BFF keeps answering everything else.
      const others = await Promise.all(
        Array.from({ length: 20 }, () => download('size=1000&length=1').then((r) => readDigest(r)))
      )
      for (const other of others)
        expect(other).toEqual({ bytes: 1000, sha256: downloadSha256(1000) })
      expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
      const hash = createHash('sha256').update(first.value!)
      let bytes = first.value!.length
      let pieces = 0
      for (let next = await reader.read(); !next.done; next = await reader.read()) {
        hash.update(next.value)
        bytes += next.value.length
        if (++pieces % 8 === 0) await new Promise((resolve) => setTimeout(resolve, 20))
      }
      expect({ bytes, sha256: hash.digest('hex') }).toEqual({
        bytes: 8 * MB,
        sha256: downloadSha256(8 * MB),
      })
    })

    it(
      'holds the upstream back while the reader does not read (backpressure)',
      { timeout: 60_000 },
      async () => {
        const response = await download(`size=${64 * MB}`)
        const reader = response.body!.getReader()
        await reader.read()
        await new Promise((resolve) => setTimeout(resolve, 1000))
        // Unread, the answer stays with the upstream: it is still writing, not all buffered on the way.
        expect(files.active()).toBe(1)
        await reader.cancel()
      }
    )

    it(
      'lets the upstream go when the browser leaves before the answer starts',
      { timeout: 60_000 },
      async () => {
        // The Node server cancels a body only once it has begun to write it: a browser gone while
        // the API was still thinking left the upstream's answer paused for good, one held
        // connection per such request.
        const leaving = new AbortController()
        const abandoned = jar
          .get(`/files/download?size=${64 * MB}&hold=1`, { headers: CSRF, signal: leaving.signal })
          .catch(() => 'aborted')
        await until(() => files.held() === 1)
        leaving.abort()
        expect(await abandoned).toBe('aborted')
        // Time for the BFF to see the connection close before the API answers.
        await new Promise((resolve) => setTimeout(resolve, 500))
        files.release()
        await until(() => files.active() === 0)
      }
    )

    // A buffer goes with its Content-Length, a stream chunked.
    for (const name of ['streamed', 'with a length'] as const) {
      it(`passes a 12 MB upload ${name} intact`, { timeout: 60_000 }, async () => {
        const payload = randomBytes(12 * MB)
        const body =
          name === 'streamed'
            ? new ReadableStream<Uint8Array>({
                start(controller) {
                  for (let i = 0; i < payload.length; i += 100_000)
                    controller.enqueue(payload.subarray(i, i + 100_000))
                  controller.close()
                },
              })
            : payload
        const response = await jar.post('/files/upload', {
          headers: { ...CSRF, 'content-type': 'application/octet-stream' },
          body: body as BodyInit,
        })
        expect(response.status).toBe(200)
        expect(await response.json()).toEqual({
          bytes: payload.length,
          sha256: createHash('sha256').update(payload).digest('hex'),
        })
      })
    }
  })
}
