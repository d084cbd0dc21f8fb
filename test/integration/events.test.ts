/**
 * `GET /bff/events` and the session-end bus, against the real IdP: each way a session ends
 * (logout, back-channel logout by sid and by sub, admin revocation, a refused refresh, idle and
 * absolute expiry) reaches an open event stream as `session_ended` with its reason within 1 s,
 * and ends the stream; `session_expiring` comes before the absolute lifetime; the refusals (no
 * X-CSRF, no session, too many streams); and `session_expired` in the audit trail, from a stream's
 * timer and from a request presenting an expired session's cookie. Latencies are printed.
 */
import * as client from 'openid-client'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { sessionHash } from '../../src/core/observe/audit.ts'
import { subjectHash } from '../../src/core/observe/log.ts'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import type { CookieJar } from '../helpers/http.ts'
import { mintLogoutToken, postLogoutToken } from '../helpers/logout-token.ts'
import { readSse, type SseReader } from '../helpers/sse.ts'
import { ALL_STORES, CSRF, describeStores, startStack, type Stack } from './harness.ts'

const ADMIN_TOKEN = 'events-admin-token-0123456789abcdef012345'
const METRICS_TOKEN = 'events-metrics-token-0123456789abcdef01234'
/** An expiry: the deadline check's period (500 ms) and then the 1 s an end is told in. */
const EXPIRY_LIMIT_MS = 1500
/** What the test measured, printed at the end: how long each end took to reach the stream. */
const latencies: string[] = []

describeStores(ALL_STORES, '/bff/events with the %s store', (store) => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({
      store,
      env: {
        BFF_IDLE_TIMEOUT: '600',
        BFF_SESSION_LIFETIME: '1800',
        BFF_ADMIN_TOKEN: ADMIN_TOKEN,
        BFF_METRICS_TOKEN: METRICS_TOKEN,
        BFF_LIVE_MAX_PER_SESSION: '2',
      },
    })
  })
  afterAll(() => stack?.close())

  const events = (jar: CookieJar, headers: HeadersInit = CSRF) =>
    jar.get('/bff/events', { headers })

  async function open(jar: CookieJar): Promise<SseReader> {
    const response = await events(jar)
    expect(response.status).toBe(200)
    const stream = readSse(response)
    await stream.next('comment') // the first line: the stream is registered
    return stream
  }

  /**
   * Runs `trigger` and waits for the stream's `session_ended`; answers its reason, measured. An
   * end the BFF is told of has 1 s; an expiry is noticed at the next deadline check (every
   * 500 ms, live.ts `tickMs`) and then has the same 1 s.
   */
  async function ended(
    stream: SseReader,
    what: string,
    trigger: () => Promise<unknown>,
    limitMs = 1000
  ) {
    const start = performance.now()
    await trigger()
    const event = await stream.next('session_ended', 3000)
    const ms = event.at - start
    latencies.push(`${store}: ${what} -> session_ended in ${ms.toFixed(1)} ms`)
    await stream.ended // the stream closes after the event
    expect(ms).toBeLessThan(limitMs)
    return JSON.parse(event.data).reason as string
  }

  function audits(event: string) {
    return stack
      .logs()
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>]
        } catch {
          return [] // workerd's own lines
        }
      })
      .filter((line) => line.audit === true && line.event === event)
  }

  /**
   * Moves the BFF's clock. A Worker learns the test clock from its next request (or object call):
   * one is made, as time passing would make it anyway in production.
   */
  async function advance(seconds: number) {
    stack.advance(seconds)
    if (stack.target === 'workerd') await (await fetch(`${stack.url}/bff/health`)).arrayBuffer()
  }

  /** `bff_live_connections` as /bff/metrics says now. */
  async function liveGauge(): Promise<number> {
    const response = await fetch(`${stack.url}/bff/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    })
    return Number(/^bff_live_connections (\d+)$/m.exec(await response.text())?.[1])
  }

  it('answers an event stream, without store or cache, counted while open', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const before = await liveGauge()
    const response = await events(jar)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(response.headers.get('cache-control')).toBe('no-store')
    const stream = readSse(response)
    await stream.next('comment')
    expect(await liveGauge()).toBe(before + 1)
    if (stack.target === 'workerd') {
      // Miniflare does not tell the Worker that its client went away; the stream's next heartbeat
      // write (25 s) would find out. The session's end frees it at once.
      await jar.post('/bff/logout', { headers: CSRF })
    }
    await stream.close()
    await expect.poll(liveGauge).toBe(before)
  })

  it('refuses without X-CSRF (403 csrf) and without a session (401 unauthenticated)', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const forged = await events(jar, {})
    expect(forged.status).toBe(403)
    expect(await forged.json()).toMatchObject({ error: 'csrf' })
    const crossSite = await events(jar, { ...CSRF, 'sec-fetch-site': 'cross-site' })
    expect(crossSite.status).toBe(403)
    const anonymous = await events(stack.jar())
    expect(anonymous.status).toBe(401)
    expect(await anonymous.json()).toMatchObject({ error: 'unauthenticated' })
  })

  it('refuses a stream past the per-session limit (429) until one closes', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const first = await open(jar)
    const second = await open(jar)
    const third = await events(jar)
    expect(third.status).toBe(429)
    expect(await third.json()).toMatchObject({ error: 'too_many_connections' })
    // Another session is not affected.
    const other = stack.jar()
    await stack.login(other)
    const theirs = await open(other)
    if (stack.target === 'workerd') {
      // Miniflare does not tell the Worker that its client went away (see above): the sessions'
      // ends free their places instead.
      await jar.post('/bff/logout', { headers: CSRF })
      await other.post('/bff/logout', { headers: CSRF })
      await Promise.all([first.ended, second.ended, theirs.ended])
      return
    }
    // The browser goes away: its place is free once the server notices.
    await first.close()
    await expect
      .poll(async () => {
        const again = await events(jar)
        if (again.status === 200) await readSse(again).close()
        return again.status
      })
      .toBe(200)
    await Promise.all([second.close(), theirs.close()])
  })

  it('logout: session_ended "logout" within 1 s, and the stream ends', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const [a, b] = [await open(jar), await open(jar)]
    const reason = await ended(a, 'logout', () => jar.post('/bff/logout', { headers: CSRF }))
    expect(reason).toBe('logout')
    expect(JSON.parse((await b.next('session_ended')).data)).toEqual({ reason: 'logout' })
  })

  it('back-channel logout by sid and by sub: "backchannel_logout" within 1 s', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'bcsid' })
    const session = (await stack.sessionOf(jar))!
    const bySid = await open(jar)
    const token = await mintLogoutToken(stack.idp, { sid: session.sid, sub: session.sub })
    expect(
      await ended(bySid, 'back-channel (sid)', async () => {
        expect((await postLogoutToken(`${stack.url}/bff/backchannel`, token)).status).toBe(200)
      })
    ).toBe('backchannel_logout')

    const [one, two] = [stack.jar(), stack.jar()]
    await stack.login(one, { user: 'bcsub' })
    await stack.login(two, { user: 'bcsub' })
    const streams = [await open(one), await open(two)]
    const bySub = await mintLogoutToken(stack.idp, { sub: 'bcsub' })
    expect(
      await ended(streams[0]!, 'back-channel (sub)', async () => {
        expect((await postLogoutToken(`${stack.url}/bff/backchannel`, bySub)).status).toBe(200)
      })
    ).toBe('backchannel_logout')
    expect(JSON.parse((await streams[1]!.next('session_ended')).data).reason).toBe(
      'backchannel_logout'
    )
  })

  it('admin revocation: "admin_revoke" within 1 s', async () => {
    const jar = stack.jar()
    await stack.login(jar, { user: 'adminned' })
    const stream = await open(jar)
    const reason = await ended(stream, 'admin revocation', async () => {
      const response = await fetch(`${stack.url}/bff/admin/sessions?sub=adminned`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      })
      expect(response.status).toBe(200)
    })
    expect(reason).toBe('admin_revoke')
  })

  it('a refresh the IdP refuses: "refresh_failed" within 1 s', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const session = (await stack.sessionOf(jar))!
    const stream = await open(jar)
    await revokeAtIdp(stack, session.refreshToken!)
    stack.advance(120) // the 60 s access token has expired: the next call refreshes
    const reason = await ended(stream, 'refused refresh', async () => {
      expect((await jar.get('/api/x', { headers: CSRF })).status).toBe(401)
    })
    expect(reason).toBe('refresh_failed')
  })

  it('idle timeout: "session_expired" within 1 s of the deadline, written to the trail once', async () => {
    if (store === 'cookie' && stack.target === 'workerd') return idleCookieWorkers()
    const jar = stack.jar()
    await stack.login(jar)
    const session = (await stack.sessionOf(jar))!
    const stream = await open(jar)
    const before = audits('session_expired').length
    // The registry compares deadlines with the clock twice a second: a jump is seen at the next tick.
    const reason = await ended(stream, 'idle timeout', () => advance(601), EXPIRY_LIMIT_MS)
    expect(reason).toBe('session_expired')
    await expect.poll(() => audits('session_expired').length).toBeGreaterThanOrEqual(before + 1)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(audits('session_expired').slice(before), 'one line').toHaveLength(1)
    const line = audits('session_expired').at(-1)!
    expect(line).toMatchObject({
      reason: 'idle_timeout',
      session: await sessionHash(session.id),
      sub: await subjectHash(session.sub),
    })
    // Found by a timer: no request, so no client address.
    expect(line.ip).toBeUndefined()
    // The expired cookie coming back later is not written again.
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(audits('session_expired').length).toBe(before + 1)
  })

  /**
   * The cookie store on Workers: the isolates share sessions, so none can confirm an idle deadline
   * it knows of; the stream ends without an event, and the page's cookie decides when it comes back.
   */
  async function idleCookieWorkers() {
    const jar = stack.jar()
    await stack.login(jar)
    const session = (await stack.sessionOf(jar))!
    const stream = await open(jar)
    await advance(601)
    await stream.ended
    expect(stream.events.some((e) => e.event === 'session_ended')).toBe(false)
    const back = await events(jar)
    expect(back.status).toBe(401)
    expect(await back.json()).toMatchObject({ error: 'session_expired' })
    await expect
      .poll(() => audits('session_expired').at(-1)?.session)
      .toBe(await sessionHash(session.id))
    expect(audits('session_expired').at(-1)).toMatchObject({
      reason: 'idle_timeout',
      route: '/bff/events',
    })
  }

  it('absolute lifetime: session_expiring first, then "session_expired"', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const session = (await stack.sessionOf(jar))!
    const stream = await open(jar)
    // Used every 500 s, the session slides up to its absolute lifetime (1800 s).
    for (let elapsed = 0; elapsed < 1500; elapsed += 500) {
      stack.advance(500)
      const user = await jar.get('/bff/user', { headers: CSRF })
      expect(user.status, await user.clone().text()).toBe(200)
    }
    await advance(250) // 50 s before the end
    const expiring = await stream.next('session_expiring', 3000)
    expect(JSON.parse(expiring.data)).toEqual({ expiresAt: session.absoluteExpiresAt })
    expect(stream.done).toBe(false)
    const reason = await ended(stream, 'absolute lifetime', () => advance(51), EXPIRY_LIMIT_MS)
    expect(reason).toBe('session_expired')
    await expect
      .poll(() => audits('session_expired').at(-1)?.session)
      .toBe(await sessionHash(session.id))
    expect(audits('session_expired').at(-1)).toMatchObject({ reason: 'absolute_lifetime' })
  })

  it('an expired session presented with a request: session_expired in the trail', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const session = (await stack.sessionOf(jar))!
    stack.advance(601)
    const response = await jar.get('/bff/user', { headers: CSRF })
    expect(response.status).toBe(401)
    expect(jar.lastSetCookies.some((line) => /^bff=;.*Max-Age=0/.test(line))).toBe(true)
    const line = audits('session_expired').at(-1)!
    expect(line).toMatchObject({
      reason: 'idle_timeout',
      session: await sessionHash(session.id),
      route: '/bff/user',
    })
    expect(line.ip).toMatch(/127\.0\.0\.1/)
    // The cookie store's cookie holds the whole session; a server store's only its id.
    expect(line.sub).toBe(store === 'cookie' ? await subjectHash(session.sub) : undefined)
    // Once: the cookie was cleared, and a copy of it adds nothing.
    const count = audits('session_expired').length
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
    expect(audits('session_expired').length).toBe(count)
  })

  // Last: it moves the clock ahead of the IdP's, whose logout tokens would then look too old.
  it('slides the session like any request: its answer carries the renewed cookie', async () => {
    const jar = stack.jar()
    await stack.login(jar)
    const before = (await stack.sessionOf(jar))!
    await advance(300)
    const response = await events(jar)
    expect(response.status).toBe(200)
    expect(jar.lastSetCookies.some((line) => /^bff=[^;]/.test(line))).toBe(true)
    const stream = readSse(response)
    await stream.next('comment')
    expect((await stack.sessionOf(jar))!.expiresAt).toBeGreaterThanOrEqual(before.expiresAt + 300)
    await jar.post('/bff/logout', { headers: CSRF })
    await stream.ended
  })
})

afterAll(() => {
  // The figures for the notes: how long each end took to reach an open stream.
  if (latencies.length) console.log(latencies.join('\n'))
})

async function revokeAtIdp(stack: Stack, refreshToken: string) {
  const config = await client.discovery(
    new URL(stack.idp.issuer),
    DEMO_BFF_CLIENT.clientId,
    DEMO_BFF_CLIENT.clientSecret,
    undefined,
    { execute: [client.allowInsecureRequests] }
  )
  await client.tokenRevocation(config, refreshToken)
}
