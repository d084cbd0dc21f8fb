/**
 * WebSocket routes across Workers isolates: a socket relayed by one isolate closes (1008
 * `session_ended:<reason>`, both sides) within 1 s when its session ends in another (a logout, a
 * back-channel logout, an admin revocation), told through the session's Durable Objects.
 * Latencies are printed. And a live connection (a socket, an event stream) ended from another
 * request of its isolate lets go of its sockets to the session's object (a request cannot touch
 * another's I/O: the end is carried back to its own). test/integration/websocket*.test.ts cover
 * the rest in workerd.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../../src/demo/idp.ts'
import type { CookieJar } from '../../helpers/http.ts'
import { mintLogoutToken, postLogoutToken } from '../../helpers/logout-token.ts'
import { readSse } from '../../helpers/sse.ts'
import { closed, nextMessage, openSocket, socketOf, until } from '../../helpers/ws-client.ts'
import { startWsUpstream, type WsUpstream } from '../../helpers/ws-upstream.ts'
import { CSRF, describeStores, startStack, type Stack } from '../../integration/harness.ts'

const ADMIN_TOKEN = 'ws-isolates-admin-token-0123456789abcdef01'
const latencies: string[] = []
afterAll(() => {
  if (latencies.length) console.log(`WebSocket close latencies:\n${latencies.join('\n')}`)
})

describeStores(['durable-object', 'cookie'], 'WebSockets across isolates (%s)', (store) => {
  let upstream: WsUpstream
  let stack: Stack
  let urls: string[]
  beforeAll(async () => {
    upstream = await startWsUpstream()
    stack = await startStack({
      store,
      isolates: 1,
      env: { BFF_ADMIN_TOKEN: ADMIN_TOKEN, TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
      configFile: ({ issuer }) => ({
        idps: {
          corp: { issuer, clientId: DEMO_BFF_CLIENT.clientId, clientSecret: '${TEST_IDP_SECRET}' },
        },
        routes: [{ prefix: '/live/', upstream: `${upstream.url}/ws/`, websocket: true }],
      }),
    })
    urls = [stack.url, ...stack.isolateUrls]
  })
  afterAll(async () => {
    await stack?.close()
    await upstream?.close()
  })

  /** A socket of `jar`'s session, relayed by the second isolate. */
  async function socketAt(jar: CookieJar) {
    // The jar's cookies are the first isolate's (another port): the same ones go to the second.
    const cookies = { ...jar, cookies: () => jar.cookies(stack.url) } as CookieJar
    const ws = await socketOf(
      openSocket({ url: urls[1]!, baseUrl: stack.baseUrl }, '/live/echo', { jar: cookies })
    )
    // The connection's sockets to the session's objects open right after its answer.
    ws.send('ready')
    expect((await nextMessage(ws)).data.toString()).toBe('ready')
    await new Promise((resolve) => setTimeout(resolve, 200))
    return ws
  }

  /** Runs `trigger` in the first isolate; the socket in the second closes, and the upstream's. */
  async function closesWithin(jar: CookieJar, what: string, trigger: () => Promise<void>) {
    const ws = await socketAt(jar)
    const count = upstream.closes.length
    const ended = closed(ws)
    await trigger()
    const { code, reason, ms } = await ended
    latencies.push(`${store}, across isolates: ${what} -> 1008 in ${ms.toFixed(1)} ms`)
    expect(ms).toBeLessThan(1000)
    await until(() => upstream.closes.length > count)
    expect(upstream.closes.at(-1)).toEqual({ code, reason })
    return { code, reason }
  }

  it('a logout in one isolate closes the socket in the other', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'ws-iso-logout' })
    const end = await closesWithin(jar, 'POST /bff/logout', async () => {
      // The jar's own origin is the first isolate's.
      const logout = await jar.post('/bff/logout', { headers: CSRF })
      expect(logout.status).toBe(302)
    })
    expect(end).toEqual({ code: 1008, reason: 'session_ended:logout' })
  })

  it('a socket ended from another request lets go of its listening sockets', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'ws-listeners' })
    const session = (await stack.sessionOf(jar))!
    // Both in the first isolate: the logout's request ends a socket of another request.
    const ws = await socketOf(openSocket(stack, '/live/echo', { jar }))
    await expect.poll(() => stack.objectListeners(session.id)).toBe(1)
    const ended = closed(ws)
    expect((await jar.post('/bff/logout', { headers: CSRF })).status).toBe(302)
    expect(await ended).toMatchObject({ code: 1008, reason: 'session_ended:logout' })
    // The connection's own request closes its socket to the session's object.
    await expect.poll(() => stack.objectListeners(session.id)).toBe(0)
  })

  it('so does an event stream (/bff/events)', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'sse-listeners' })
    const session = (await stack.sessionOf(jar))!
    const stream = readSse(await jar.get('/bff/events', { headers: CSRF }))
    await stream.next('comment')
    await expect.poll(() => stack.objectListeners(session.id)).toBe(1)
    expect((await jar.post('/bff/logout', { headers: CSRF })).status).toBe(302)
    await stream.next('session_ended', 3000)
    await expect.poll(() => stack.objectListeners(session.id)).toBe(0)
  })

  it('a back-channel logout (by sid) in one isolate closes the socket in the other', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'ws-iso-sid' })
    const session = (await stack.sessionOf(jar))!
    const token = await mintLogoutToken(stack.idp, { sid: session.sid, sub: session.sub })
    const end = await closesWithin(jar, 'back-channel (sid)', async () => {
      expect((await postLogoutToken(`${urls[0]}/bff/backchannel/corp`, token)).status).toBe(200)
    })
    expect(end).toEqual({ code: 1008, reason: 'session_ended:backchannel_logout' })
  })

  it('an admin revocation in one isolate closes the socket in the other', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'ws-iso-admin' })
    const session = (await stack.sessionOf(jar))!
    const end = await closesWithin(jar, 'admin revoke (sub)', async () => {
      const revoke = await fetch(`${urls[0]}/bff/admin/sessions?sub=${session.sub}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
      expect(revoke.status).toBe(200)
    })
    expect(end).toEqual({ code: 1008, reason: 'session_ended:admin_revoke' })
  })
})
