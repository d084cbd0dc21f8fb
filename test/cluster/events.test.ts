/**
 * Session ends across instances: two Node instances share Redis (the `redis` store, and the
 * `cookie` store with Redis behind it); a session ends on one (logout, back-channel, admin) while
 * its event stream is open on the other, which must end it within 1 s through Redis pub/sub.
 * Latencies are printed. And the `cookie` store's idle deadline, which no instance can confirm on
 * its own: the stream asks the page to come back, and its cookie decides.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { CookieJar } from '../helpers/http.ts'
import { mintLogoutToken, postLogoutToken } from '../helpers/logout-token.ts'
import { readSse, type SseReader } from '../helpers/sse.ts'
import { startCluster, type Cluster } from './cluster.ts'

const CSRF = { 'x-csrf': '1' }
const ADMIN_TOKEN = 'cluster-admin-token-0123456789abcdef0123'
vi.setConfig({ testTimeout: 30_000 })
const latencies: string[] = []

/** The Cookie header the browser would send, to address one instance directly. */
function cookieHeader(c: Cluster, jar: CookieJar): string {
  return Object.entries(jar.cookies(c.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
}

for (const store of ['redis', 'cookie'] as const) {
  describe(`session ends across two instances (${store} store with Redis)`, () => {
    let cluster: Cluster
    beforeAll(async () => {
      cluster = await startCluster({
        env: {
          BFF_SESSION_STORE: store,
          BFF_REDIS_URL: 'redis://127.0.0.1:6379',
          BFF_ADMIN_TOKEN: ADMIN_TOKEN,
          BFF_IDLE_TIMEOUT: '600',
        },
      })
    })
    afterAll(() => cluster?.close())

    /** The session's event stream, opened at instance `index`. */
    async function streamAt(index: number, jar: CookieJar): Promise<SseReader> {
      const response = await fetch(`${cluster.instances[index]!.url}/bff/events`, {
        headers: { ...CSRF, cookie: cookieHeader(cluster, jar) },
      })
      expect(response.status).toBe(200)
      const stream = readSse(response)
      await stream.next('comment')
      return stream
    }

    async function endedWithin(stream: SseReader, what: string, trigger: () => Promise<void>) {
      const start = performance.now()
      await trigger()
      const event = await stream.next('session_ended', 3000)
      const ms = event.at - start
      latencies.push(`${store}, across instances: ${what} -> session_ended in ${ms.toFixed(1)} ms`)
      await stream.ended
      expect(ms).toBeLessThan(1000)
      return JSON.parse(event.data).reason as string
    }

    it('a logout on one instance ends the stream on the other', async () => {
      const jar = cluster.jar()
      await cluster.login(jar)
      const stream = await streamAt(1, jar)
      const reason = await endedWithin(stream, 'logout', async () => {
        const logout = await fetch(`${cluster.instances[0]!.url}/bff/logout`, {
          method: 'POST',
          headers: { ...CSRF, cookie: cookieHeader(cluster, jar) },
          redirect: 'manual',
        })
        expect(logout.status).toBe(302)
      })
      expect(reason).toBe('logout')
    })

    it('a back-channel logout (sid, then sub) on one instance ends the streams on the other', async () => {
      const jar = cluster.jar()
      await cluster.login(jar, 'xsid')
      const session = await cluster.session(jar)
      const bySid = await streamAt(1, jar)
      const token = await mintLogoutToken(cluster.idp, { sid: session.sid, sub: session.sub })
      const reason = await endedWithin(bySid, 'back-channel (sid)', async () => {
        const url = `${cluster.instances[0]!.url}/bff/backchannel`
        expect((await postLogoutToken(url, token)).status).toBe(200)
      })
      expect(reason).toBe('backchannel_logout')

      const other = cluster.jar()
      await cluster.login(other, 'xsub')
      const bySub = await streamAt(0, other)
      const subToken = await mintLogoutToken(cluster.idp, { sub: 'xsub' })
      await endedWithin(bySub, 'back-channel (sub)', async () => {
        const url = `${cluster.instances[1]!.url}/bff/backchannel`
        expect((await postLogoutToken(url, subToken)).status).toBe(200)
      })
    })

    it('an admin revocation on one instance ends the stream on the other', async () => {
      const jar = cluster.jar()
      await cluster.login(jar, 'xadmin')
      const stream = await streamAt(1, jar)
      const reason = await endedWithin(stream, 'admin revocation', async () => {
        const response = await fetch(`${cluster.instances[0]!.url}/bff/admin/sessions?sub=xadmin`, {
          method: 'DELETE',
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        })
        expect(response.status).toBe(200)
      })
      expect(reason).toBe('admin_revoke')
    })

    if (store === 'redis') {
      it('idle timeout: the instance holding the stream finds it in Redis and ends it', async () => {
        const jar = cluster.jar()
        await cluster.login(jar)
        const stream = await streamAt(1, jar)
        const reason = await endedWithin(stream, 'idle timeout', async () => cluster.advance(601))
        expect(reason).toBe('session_expired')
      })
    } else {
      it('idle timeout, which no instance can confirm: the page is asked back, its cookie decides', async () => {
        const jar = cluster.jar()
        await cluster.login(jar)
        const stream = await streamAt(1, jar)
        // Used through instance 0 only: instance 1 never sees the session slide.
        cluster.advance(400)
        const used = await fetch(`${cluster.instances[0]!.url}/bff/user`, {
          headers: { ...CSRF, cookie: cookieHeader(cluster, jar) },
        })
        expect(used.status).toBe(200)
        for (const line of used.headers.getSetCookie()) jar.setCookie(cluster.url, line)
        cluster.advance(201) // past the deadline instance 1 knows, within the slid one
        await stream.ended
        // No session_ended: the session may well be alive, and it is.
        expect(stream.events.some((e) => e.event === 'session_ended')).toBe(false)
        const again = await streamAt(1, jar)
        await again.close()
        // Once it has really expired, the page's reconnection is refused.
        cluster.advance(601)
        const late = await fetch(`${cluster.instances[1]!.url}/bff/events`, {
          headers: { ...CSRF, cookie: cookieHeader(cluster, jar) },
        })
        expect(late.status).toBe(401)
        expect(await late.json()).toMatchObject({ error: 'session_expired' })
      })
    }
  })
}

afterAll(() => {
  if (latencies.length) console.log(latencies.join('\n'))
})
