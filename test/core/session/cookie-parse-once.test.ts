/**
 * One Cookie header parse per request, whatever the route reads: the session cookie and its
 * chunks, login transactions, the logged-out marker, chunks to delete. Counted as reads of the
 * request's Cookie header, which every parser has to make, so it holds whichever parser runs.
 * Against the real IdP, with a session large enough to be chunked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createBff, parseConfig } from '../../../src/index.ts'
import { bffClientMetadata, DEMO_BFF_CLIENT, startIdp, type Idp } from '../../../src/demo/idp.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../../helpers/http.ts'
import { loginAtIdp } from '../../helpers/idp-login.ts'
import { startRecordingUpstream, type RecordingUpstream } from '../../helpers/upstream.ts'

const BASE = 'https://app.example.test'
const CSRF = { 'x-csrf': '1' }

let idp: Idp
let upstream: RecordingUpstream
let app: ReturnType<typeof createBff>

beforeAll(async () => {
  idp = await startIdp({
    clients: [bffClientMetadata({ redirectUris: [`${BASE}/bff/callback`] })],
  })
  upstream = await startRecordingUpstream()
  const config = parseConfig({
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: BASE,
    BFF_SESSION_SECRET: 'a-session-secret-of-more-than-32-characters',
    BFF_API: `/api/=${upstream.url}/`,
    // Small lines: the sealed session then needs several chunks.
    BFF_COOKIE_MAX_BYTES: '1024',
  })
  app = createBff(config, { log: () => {} })
})

afterAll(async () => {
  await upstream.close()
  await idp.stop()
})

/** Sends a request to the BFF with the jar's cookies; counts its Cookie header reads. */
async function send(
  jar: CookieJar,
  path: string,
  init: { method?: string; headers?: Record<string, string> } = {}
): Promise<{ response: Response; reads: number }> {
  const url = new URL(path, BASE)
  const headers = new Headers(init.headers)
  const cookie = Object.entries(jar.cookies(url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
  if (cookie) headers.set('cookie', cookie)
  const request = new Request(url, { method: init.method ?? 'GET', headers })
  let reads = 0
  const get = request.headers.get.bind(request.headers)
  request.headers.get = (name: string) => {
    if (name.toLowerCase() === 'cookie') reads++
    return get(name)
  }
  const response = await app.fetch(request)
  for (const line of response.headers.getSetCookie()) jar.setCookie(url, line)
  return { response, reads }
}

/** Where a BFF redirect points (its Location may be relative: the response has no URL). */
const location = (response: Response) => new URL(response.headers.get('location')!, BASE)

/** Logs in through the IdP's pages; each BFF request on the way reads its cookies once. */
async function login(jar: CookieJar, query = 'returnTo=/') {
  const start = await send(jar, `/bff/login?${query}`)
  expect(start.response.status).toBe(302)
  expect(start.reads).toBe(1)
  const atIdp = await loginAtIdp(jar, location(start.response), {
    login: 'alice',
    password: 'pass',
  })
  const callback = redirectLocation(atIdp)!
  const done = await send(jar, callback.pathname + callback.search)
  expect(done.response.status).toBe(302)
  expect(done.reads).toBe(1)
}

const chunks = (jar: CookieJar) =>
  Object.keys(jar.cookies(BASE)).filter((name) => /^__Host-bff(\.\d+)?$/.test(name))

describe('one Cookie header parse per request', () => {
  it('in login, callback, user, proxy and logout, with a chunked session and many cookies', async () => {
    const jar = createCookieJar()
    for (const name of ['theme', '_ga', 'consent', 'bff', 'lang']) {
      jar.setCookie(BASE, `${name}=${name}-value; Path=/`)
    }
    await login(jar)
    expect(chunks(jar).length).toBeGreaterThan(1)

    for (const path of ['/bff/user', '/api/orders?x=1']) {
      const { response, reads } = await send(jar, path, { headers: CSRF })
      expect(response.status).toBe(200)
      expect(reads).toBe(1)
    }

    // Logins in other tabs: pending transactions are weighed and the oldest dropped.
    for (let i = 0; i < 6; i++) {
      const { response, reads } = await send(jar, '/bff/login?returnTo=/tab')
      expect(response.status).toBe(302)
      expect(reads).toBe(1)
    }
    // A callback that ends the earlier session, with transactions pending, reads once too.
    await login(jar)

    const logout = await send(jar, '/bff/logout', { method: 'POST', headers: CSRF })
    expect(logout.response.status).toBe(302)
    expect(logout.reads).toBe(1)
    expect(chunks(jar)).toEqual([])

    // Logged out: a silent login answers itself; a real one clears the marker.
    const silent = await send(jar, '/bff/login?returnTo=/&prompt=none')
    expect(location(silent.response).search).toBe('?error=login_required')
    expect(silent.reads).toBe(1)
    await login(jar)
    expect(jar.cookies(BASE)['__Host-bff-out']).toBeUndefined()
  })

  it('when a tampered chunk ends the session and every chunk is cleared', async () => {
    const jar = createCookieJar()
    await login(jar)
    const names = chunks(jar)
    expect(names.length).toBeGreaterThan(1)
    const last = names.at(-1)!
    const value = jar.cookies(BASE)[last]!
    const flipped = value.slice(0, 10) + (value[10] === 'A' ? 'B' : 'A') + value.slice(11)
    jar.setCookie(BASE, `${last}=${flipped}; Path=/; Secure`)
    const { response, reads } = await send(jar, '/bff/user', { headers: CSRF })
    expect(response.status).toBe(401)
    expect(reads).toBe(1)
    expect(chunks(jar)).toEqual([])
  })
})
