/**
 * Proxied WebSockets across instances: two Node instances share Redis; a session's socket is open
 * through one while its session ends through the other (logout, back-channel by sid and by sub,
 * admin revocation). The socket must close with 1008 and the end's reason within 1 s, told through
 * Redis pub/sub. Latencies are printed.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { WebSocket } from 'ws'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import type { CookieJar } from '../helpers/http.ts'
import { mintLogoutToken, postLogoutToken } from '../helpers/logout-token.ts'
import { openSocket, socketOf } from '../helpers/ws-client.ts'
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts'
import { startCluster, type Cluster } from './cluster.ts'

const CSRF = { 'x-csrf': '1' }
const ADMIN_TOKEN = 'cluster-admin-token-0123456789abcdef0123'
vi.setConfig({ testTimeout: 30_000 })
const latencies: string[] = []

for (const store of ['redis', 'cookie'] as const) {
  describe(`WebSockets end with their session across two instances (${store} store with Redis)`, () => {
    let cluster: Cluster
    let upstream: WsUpstream
    beforeAll(async () => {
      upstream = await startWsUpstream()
      cluster = await startCluster({
        env: {
          BFF_SESSION_STORE: store,
          BFF_REDIS_URL: 'redis://127.0.0.1:6379',
          BFF_ADMIN_TOKEN: ADMIN_TOKEN,
        },
        configFile: ({ issuer }) => ({
          idps: {
            corp: {
              issuer,
              clientId: DEMO_BFF_CLIENT.clientId,
              clientSecret: DEMO_BFF_CLIENT.clientSecret,
            },
          },
          routes: [{ prefix: '/live/', upstream: `${upstream.url}/`, websocket: true }],
        }),
      })
    })
    afterAll(async () => {
      await cluster?.close()
      await upstream?.close()
    })

    const cookieHeader = (jar: CookieJar) =>
      Object.entries(jar.cookies(cluster.url))
        .map(([name, value]) => `${name}=${value}`)
        .join('; ')

    /** An echoing socket of the jar's session, opened at instance `index` directly. */
    async function socketAt(index: number, jar: CookieJar): Promise<WebSocket> {
      const instance = { url: cluster.instances[index]!.url, baseUrl: cluster.url }
      // The jar's cookies are the balancer's origin's; the instance is addressed directly.
      const opened = openSocket(instance, '/live/echo', { jar: withCookiesFor(jar, instance.url) })
      const ws = await socketOf(opened)
      ws.send('hello')
      await new Promise((resolve) => ws.once('message', resolve))
      return ws
    }

    /** A jar view that answers the balancer's cookies for an instance's URL. */
    function withCookiesFor(jar: CookieJar, url: string): CookieJar {
      return {
        ...jar,
        cookies: (at) => (String(at).startsWith(url) ? jar.cookies(cluster.url) : jar.cookies(at)),
        setCookie: () => {},
      }
    }

    async function closedWithin(ws: WebSocket, what: string, trigger: () => Promise<void>) {
      const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
        ws.once('close', (code, reason) =>
          resolve({ code, reason: reason.toString(), at: performance.now() })
        )
      )
      const start = performance.now()
      await trigger()
      const close = await closed
      const ms = close.at - start
      latencies.push(`${store}, across instances: ${what} -> socket closed in ${ms.toFixed(1)} ms`)
      expect(ms).toBeLessThan(1000)
      expect(close.code).toBe(1008)
      return close.reason
    }

    it('a logout on one instance closes the socket on the other', async () => {
      const jar = cluster.jar()
      await cluster.login(jar, 'wslogout')
      const ws = await socketAt(1, jar)
      const reason = await closedWithin(ws, 'logout', async () => {
        const logout = await fetch(`${cluster.instances[0]!.url}/bff/logout`, {
          method: 'POST',
          headers: { ...CSRF, cookie: cookieHeader(jar) },
          redirect: 'manual',
        })
        expect(logout.status).toBe(302)
      })
      expect(reason).toBe('session_ended:logout')
    })

    it('a back-channel logout by sid, then by sub, on one instance closes sockets on the other', async () => {
      const jar = cluster.jar()
      await cluster.login(jar, 'wssid')
      const { sid } = await cluster.session(jar)
      const ws = await socketAt(1, jar)
      const sidToken = await mintLogoutToken(cluster.idp, { sid })
      const bySid = await closedWithin(ws, 'back-channel (sid)', async () => {
        const url = `${cluster.instances[0]!.url}/bff/backchannel/corp`
        expect((await postLogoutToken(url, sidToken)).status).toBe(200)
      })
      expect(bySid).toBe('session_ended:backchannel_logout')

      const other = cluster.jar()
      await cluster.login(other, 'wssub')
      const second = await socketAt(0, other)
      const subToken = await mintLogoutToken(cluster.idp, { sub: 'wssub' })
      await closedWithin(second, 'back-channel (sub)', async () => {
        const url = `${cluster.instances[1]!.url}/bff/backchannel/corp`
        expect((await postLogoutToken(url, subToken)).status).toBe(200)
      })
    })

    it('an admin revocation on one instance closes the socket on the other', async () => {
      const jar = cluster.jar()
      await cluster.login(jar, 'wsadmin')
      const ws = await socketAt(1, jar)
      const reason = await closedWithin(ws, 'admin revocation', async () => {
        const response = await fetch(
          `${cluster.instances[0]!.url}/bff/admin/sessions?sub=wsadmin`,
          { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }
        )
        expect(response.status).toBe(200)
      })
      expect(reason).toBe('session_ended:admin_revoke')
    })
  })
}

afterAll(() => {
  for (const line of latencies) console.log(line)
})
