/**
 * Server-Sent Events through the API proxy, on Node and in workerd (DESIGN "Streaming"): each
 * event reaches the browser as the upstream writes it (the first one while the upstream is still
 * writing, held back by the test), and a stream that outlives the upstream timeout is not cut:
 * the timeout covers the wait for the upstream's headers only. A stream ends when its session
 * ends (Node here: the test holds the bus that carries the end).
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { CookieJar } from '../helpers/http.ts'
import { startSseUpstream, type SseUpstream } from '../helpers/sse-upstream.ts'
import { inProcessBus, type SessionEnd } from '../../src/core/session/live.ts'
import { CSRF, TARGET, describeStores, startStack, type Stack } from './harness.ts'

/** Reads `body` until `events` events have come (or it ends); answers their data lines. */
async function readEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  events: number
): Promise<string[]> {
  const decoder = new TextDecoder()
  let text = ''
  const data = () => [...text.matchAll(/^data: (.*)$/gm)].map((match) => match[1]!)
  while (data().length < events) {
    const next = await reader.read()
    if (next.done) break
    text += decoder.decode(next.value, { stream: true })
  }
  return data()
}

describeStores(['cookie'], 'Server-Sent Events through the proxy (%s store)', (store) => {
  let sse: SseUpstream
  let stack: Stack
  let jar: CookieJar
  const bus = inProcessBus()
  const ends: SessionEnd[] = []
  bus.subscribe((end) => ends.push(end))

  beforeAll(async () => {
    sse = await startSseUpstream()
    stack = await startStack({
      store,
      sessionEnds: bus,
      // One second for the upstream's headers: the streams below last longer.
      env: { BFF_API: `/sse/=${sse.url}/`, BFF_UPSTREAM_TIMEOUT: '1' },
    })
    jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
  })
  afterAll(async () => {
    await stack?.close()
    await sse?.close()
  })

  it('passes the first event on while the upstream is still writing', async () => {
    const response = await jar.get('/sse/events?count=3&hold=1', { headers: CSRF })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/event-stream')
    const reader = response.body!.getReader()
    // The upstream holds the rest back until the first event has reached the client.
    expect(await readEvents(reader, 1)).toEqual(['tick 1'])
    expect(sse.writing()).toBe(1)
    sse.release()
    expect(await readEvents(reader, 2)).toEqual(['tick 2', 'tick 3'])
    expect((await reader.read()).done).toBe(true)
  })

  it('keeps a stream open past the upstream timeout once the headers came', async () => {
    const started = Date.now()
    const response = await jar.get('/sse/events?count=12&every=250', { headers: CSRF })
    expect(response.status).toBe(200)
    const events = await readEvents(response.body!.getReader(), 12)
    expect(events).toEqual(Array.from({ length: 12 }, (_, i) => `tick ${i + 1}`))
    // About 2.75 s of events against a 1 s timeout.
    expect(Date.now() - started).toBeGreaterThan(2500)
  })

  it.skipIf(TARGET !== 'node')(
    'ends the stream within a second of its session ending, and lets the upstream go',
    async () => {
      const other = stack.jar()
      await stack.login(other, { user: 'sse-reader' })
      const session = (await stack.sessionOf(other))!
      const response = await other.get('/sse/events?count=1000&every=100', { headers: CSRF })
      const reader = response.body!.getReader()
      expect(await readEvents(reader, 1)).toEqual(['tick 1'])
      const published = ends.length
      expect((await other.post('/bff/logout', { headers: CSRF })).status).toBe(302)
      // The logout route publishes the end (the events work); until it does, the test does.
      if (!ends.slice(published).some((end) => 'id' in end && end.id === session.id)) {
        await bus.publish({ reason: 'logout', id: session.id })
      }
      const started = performance.now()
      while (!(await reader.read()).done);
      expect(performance.now() - started).toBeLessThan(1000)
      await expect.poll(() => sse.writing(), { timeout: 5000 }).toBe(0)
    }
  )
})
