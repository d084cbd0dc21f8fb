/**
 * Session ends across Workers isolates: a stream of `/bff/events` open in one isolate ends within
 * 1 s when the session ends in another (a logout, a back-channel logout by sid and by sub, an admin
 * revocation), told through the session's Durable Objects. Latencies are printed. The Workers
 * counterpart of test/cluster/events.test.ts.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { CookieJar } from '../../helpers/http.ts'
import { mintLogoutToken, postLogoutToken } from '../../helpers/logout-token.ts'
import { readSse, type SseReader } from '../../helpers/sse.ts'
import { CSRF, describeStores, startStack, type Stack } from '../../integration/harness.ts'

const ADMIN_TOKEN = 'isolates-admin-token-0123456789abcdef0123'
const latencies: string[] = []

function cookieHeader(stack: Stack, jar: CookieJar): string {
  return Object.entries(jar.cookies(stack.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

describeStores(['durable-object', 'cookie'], 'session ends across isolates (%s)', (store) => {
  let stack: Stack
  let urls: string[]
  beforeAll(async () => {
    stack = await startStack({
      store,
      isolates: 1,
      env: { BFF_ADMIN_TOKEN: ADMIN_TOKEN, BFF_IDLE_TIMEOUT: '600' },
    })
    urls = [stack.url, ...stack.isolateUrls]
  })
  afterAll(() => stack?.close())

  async function streamAt(url: string, jar: CookieJar): Promise<SseReader> {
    const response = await fetch(`${url}/bff/events`, {
      headers: { ...CSRF, cookie: cookieHeader(stack, jar) },
    })
    expect(response.status).toBe(200)
    const stream = readSse(response)
    await stream.next('comment')
    // The stream's sockets to the session's objects open right after its answer.
    await new Promise((resolve) => setTimeout(resolve, 200))
    return stream
  }

  async function endedWithin(stream: SseReader, what: string, trigger: () => Promise<void>) {
    const start = performance.now()
    await trigger()
    const event = await stream.next('session_ended', 3000)
    const ms = event.at - start
    latencies.push(`${store}, across isolates: ${what} -> session_ended in ${ms.toFixed(1)} ms`)
    await stream.ended
    expect(ms).toBeLessThan(1000)
    return JSON.parse(event.data).reason as string
  }

  it('a logout in one isolate ends the stream in the other', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'iso-logout' })
    const stream = await streamAt(urls[1]!, jar)
    const reason = await endedWithin(stream, 'logout', async () => {
      const logout = await fetch(`${urls[0]}/bff/logout`, {
        method: 'POST',
        headers: { ...CSRF, cookie: cookieHeader(stack, jar) },
        redirect: 'manual',
      })
      expect(logout.status).toBe(302)
    })
    expect(reason).toBe('logout')
  })

  it('a back-channel logout (sid, then sub) in one isolate ends the stream in the other', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'iso-sid' })
    const session = (await stack.sessionOf(jar))!
    const bySid = await streamAt(urls[1]!, jar)
    const token = await mintLogoutToken(stack.idp, { sid: session.sid, sub: session.sub })
    await endedWithin(bySid, 'back-channel (sid)', async () => {
      expect((await postLogoutToken(`${urls[0]}/bff/backchannel`, token)).status).toBe(200)
    })

    const other = stack.jar()
    await stack.login(other, { user: 'iso-sub' })
    const bySub = await streamAt(urls[1]!, other)
    const subToken = await mintLogoutToken(stack.idp, { sub: 'iso-sub' })
    const reason = await endedWithin(bySub, 'back-channel (sub)', async () => {
      expect((await postLogoutToken(`${urls[0]}/bff/backchannel`, subToken)).status).toBe(200)
    })
    expect(reason).toBe('backchannel_logout')
  })

  it('an admin revocation in one isolate ends the stream in the other', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'iso-admin' })
    const stream = await streamAt(urls[1]!, jar)
    const reason = await endedWithin(stream, 'admin revocation', async () => {
      const response = await fetch(`${urls[0]}/bff/admin/sessions?sub=iso-admin`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
      expect(response.status).toBe(200)
    })
    expect(reason).toBe('admin_revoke')
  })
})

afterAll(() => {
  if (latencies.length) console.log(latencies.join('\n'))
})
