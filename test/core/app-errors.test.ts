/**
 * How createBff answers and logs what goes wrong, as a library with no static files: the log
 * lines' levels and reasons, the page each error gets, and addresses nothing serves.
 */
import { describe, expect, it } from 'vitest'
import { Hono } from 'hono'
import { createBff, notFound, parseConfig } from '../../src/index.ts'
import { captureLog } from '../helpers/capture-log.ts'
import { freePort } from '../helpers/upstream.ts'

const ORIGIN = 'https://app.example.com'
const HTML = { accept: 'text/html,application/xhtml+xml' }

async function bff() {
  // An IdP address where nothing listens: a real refused connection, nothing mocked.
  const idpPort = await freePort()
  const logs = captureLog()
  const app = createBff(
    parseConfig({
      BFF_ISSUER: `http://127.0.0.1:${idpPort}`,
      BFF_CLIENT_ID: 'spa',
      BFF_CLIENT_SECRET: 'client-secret',
      BFF_BASE_URL: ORIGIN,
      BFF_SESSION_SECRET: 'a'.repeat(40),
      BFF_API: '/api/=https://api.example.com/',
    }),
    { log: logs.log }
  )
  const get = (path: string, headers: Record<string, string> = {}, method = 'GET') =>
    app.request(`${ORIGIN}${path}`, { headers, method })
  const failed = () => logs.containing('request.failed').map((line) => JSON.parse(line))
  return { app, get, failed, logs, idpPort }
}

describe('request.failed log lines', () => {
  it('an anonymous page load (401 from /bff/user) is info, with no reason', async () => {
    const { get, failed, logs } = await bff()
    expect((await get('/bff/user', { 'x-csrf': '1' })).status).toBe(401)
    expect(failed()).toEqual([
      {
        level: 'info',
        event: 'request.failed',
        code: 'unauthenticated',
        status: 401,
        path: '/bff/user',
      },
    ])
    expect(logs.lines.join('\n')).not.toContain('undefined')
  })

  it('a bad callback is a warning naming the cause', async () => {
    const { get, failed } = await bff()
    expect((await get('/bff/callback?code=c0de')).status).toBe(400)
    expect(failed()).toEqual([
      expect.objectContaining({
        level: 'warn',
        code: 'invalid_callback',
        reason: 'Error:missing_state',
      }),
    ])
    await get('/bff/callback?state=st4te&code=c0de')
    expect(failed()[1]).toMatchObject({ reason: 'Error:no_login_in_progress' })
  })

  it('an unreachable IdP is an error naming the refused address, and no URL or query', async () => {
    const { get, failed, logs, idpPort } = await bff()
    expect((await get('/bff/login?returnTo=%2Fsecret-page')).status).toBe(503)
    expect(failed()).toEqual([
      expect.objectContaining({
        level: 'error',
        code: 'idp_unavailable',
        reason: `TypeError: fetch failed (ECONNREFUSED 127.0.0.1:${idpPort})`,
      }),
    ])
    expect(logs.lines.join('\n')).not.toMatch(/secret-page|returnTo|client-secret/)
    // The request's reason names an address, not a URL (discovery's own line names the public
    // document it could not read, as an operator needs).
    expect(JSON.stringify(failed())).not.toMatch(/http:/)
  })
})

describe('error pages for browser navigations', () => {
  async function page(path: string) {
    const { get } = await bff()
    const response = await get(path, HTML)
    const html = await response.text()
    return {
      status: response.status,
      title: /<title>(.*)<\/title>/.exec(html)?.[1],
      links: [...html.matchAll(/<a class="\w+" href="([^"]*)">([^<]*)<\/a>/g)].map(
        ([, href, label]) => `${label} -> ${href}`
      ),
      csp: response.headers.get('content-security-policy'),
    }
  }

  it('an API address opened in the address bar: for the app, no login offered', async () => {
    expect(await page('/api/hello')).toMatchObject({
      status: 403,
      title: 'This address is for the app',
      links: ['Go to the app&#39;s start page -> /'],
    })
  })

  it('a bad callback: log in again', async () => {
    expect(await page('/bff/callback?state=x&code=y')).toMatchObject({
      status: 400,
      title: 'That did not work',
      links: ['Log in again -> /bff/login', 'Go to the start page -> /'],
    })
  })

  it('an IdP that cannot be reached: the trouble page', async () => {
    expect(await page('/bff/login')).toMatchObject({
      status: 503,
      title: 'The service is having trouble',
      links: ['Go to the start page -> /'],
    })
  })

  it("an address nothing serves: not found, with the pages' own strict CSP", async () => {
    for (const path of ['/nothing/here', '/bff/nope']) {
      const notFound = await page(path)
      expect(notFound).toMatchObject({ status: 404, title: 'Not found' })
      expect(notFound.csp).toMatch(/^default-src 'none'/)
    }
  })
})

describe('an address nothing serves, for API callers', () => {
  it('answers 404 not_found JSON, whatever the method', async () => {
    const { get } = await bff()
    for (const [method, headers] of [
      ['GET', {}],
      ['GET', { 'x-csrf': '1' }],
      ['POST', { 'x-csrf': '1', accept: 'application/json' }],
      ['DELETE', {}],
    ] as const) {
      const response = await get('/nothing/here', headers, method)
      expect(response.status).toBe(404)
      expect(response.headers.get('content-type')).toBe('application/json')
      expect(await response.json()).toEqual({
        error: 'not_found',
        message: 'Nothing is at this address.',
      })
    }
  })
})

describe('a host app mounting the BFF', () => {
  it('can answer its unknown addresses as the BFF does, with notFound', async () => {
    const { app: bffApp } = await bff()
    const host = new Hono()
    host.get('/home', (c) => c.text('host home'))
    host.route('/', bffApp)
    host.notFound((c) => notFound(c, () => {}))
    expect(await (await host.request(`${ORIGIN}/home`)).text()).toBe('host home')
    const missing = await host.request(`${ORIGIN}/nope`)
    expect(missing.status).toBe(404)
    expect(await missing.json()).toMatchObject({ error: 'not_found' })
    const page = await host.request(`${ORIGIN}/nope`, { headers: HTML })
    expect(await page.text()).toContain('<title>Not found</title>')
  })
})
