/**
 * The SPA's files on the Node server (static.ts) through startNode and real HTTP: BFF_SPA_DIR,
 * BFF_SPA_FALLBACK, paths that try to leave the directory, and the production default of none.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startNode, type NodeServer } from '../../../src/adapters/node/server.ts'
import { DEMO_SPA_DIR } from '../../../src/adapters/node/static.ts'
import { ConfigError } from '../../../src/core/config/env.ts'
import { rawRequest } from '../../helpers/raw-http.ts'

/** Production settings; the IdP is never reached (discovery fails in the background). */
const PRODUCTION = {
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'client',
  BFF_CLIENT_SECRET: 'client-secret',
  BFF_SESSION_SECRET: 'a'.repeat(32),
  BFF_IDP_TIMEOUT: '1',
  BFF_API: '/api/=http://127.0.0.1:9/',
  PORT: '0',
}
const SECRET = 'TOP-SECRET-outside-the-spa-dir'
const INDEX = '<!doctype html><title>the spa</title>'
const quiet = { deps: { log: () => {} } }

let root: string
let site: string
beforeAll(async () => {
  // root/secret.txt is next to the served directory root/site: no request may read it.
  root = await mkdtemp(path.join(tmpdir(), 'bff-spa-'))
  site = path.join(root, 'site')
  for (const dir of ['assets', 'bff', 'api', '.git', '.well-known']) {
    await mkdir(path.join(site, dir), { recursive: true })
  }
  await writeFile(path.join(root, 'secret.txt'), SECRET)
  await writeFile(path.join(site, 'index.html'), INDEX)
  await writeFile(path.join(site, 'assets', 'app.js'), 'console.log("app")')
  await writeFile(path.join(site, 'bff', 'user'), 'a file shadowing a BFF route')
  await writeFile(path.join(site, 'api', 'data.json'), '{"file":true}')
  await writeFile(path.join(site, '.env'), `KEY=${SECRET}`)
  await writeFile(path.join(site, '.git', 'config'), SECRET)
  await writeFile(path.join(site, '.well-known', 'security.txt'), 'Contact: x@example.com')
})
afterAll(() => rm(root, { recursive: true, force: true }))

async function withServer(
  settings: Record<string, string>,
  run: (server: NodeServer) => Promise<void>
) {
  const server = await startNode({ ...PRODUCTION, ...settings }, quiet)
  try {
    await run(server)
  } finally {
    await server.close()
  }
}

const html = { accept: 'text/html,application/xhtml+xml' }

describe('BFF_SPA_DIR', () => {
  it('serves the directory at / with the SPA headers, GET and HEAD only', async () => {
    await withServer({ BFF_SPA_DIR: site }, async ({ url }) => {
      const page = await fetch(`${url}/`)
      expect(page.status).toBe(200)
      expect(await page.text()).toBe(INDEX)
      expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'; frame-/)
      expect(page.headers.get('x-frame-options')).toBe('DENY')
      expect(page.headers.get('x-content-type-options')).toBe('nosniff')

      const script = await fetch(`${url}/assets/app.js`)
      expect(script.status).toBe(200)
      expect(script.headers.get('content-type')).toMatch(/^text\/javascript/)
      const head = await fetch(`${url}/assets/app.js`, { method: 'HEAD' })
      expect([head.status, await head.text()]).toEqual([200, ''])
      expect(await fetch(`${url}/.well-known/security.txt`).then((r) => r.status)).toBe(200)

      // A form post to a page's address is not a file request.
      expect((await fetch(`${url}/index.html`, { method: 'POST' })).status).toBe(404)
    })
  })

  it('never answers under /bff/ or a proxied prefix, and hides dotfiles', async () => {
    await withServer({ BFF_SPA_DIR: site }, async ({ url }) => {
      const user = await fetch(`${url}/bff/user`, { headers: { 'x-csrf': '1' } })
      expect([user.status, await user.json()]).toEqual([
        401,
        { error: 'unauthenticated', message: 'Not logged in.' },
      ])
      const api = await fetch(`${url}/api/data.json`)
      expect(api.status).toBe(403) // the proxy's CSRF refusal, not the file
      for (const hidden of ['/.env', '/.git/config', '/assets/../.env']) {
        const res = await rawRequest(Number(new URL(url).port), {
          method: 'GET',
          target: hidden,
          headers: [['host', new URL(url).host]],
        })
        expect([hidden, res.status]).toEqual([hidden, 404])
        expect(res.body).not.toContain(SECRET)
      }
    })
  })

  it('refuses paths that climb out of the directory, encoded or not', async () => {
    for (const fallback of ['false', 'true']) {
      await withServer({ BFF_SPA_DIR: site, BFF_SPA_FALLBACK: fallback }, async ({ url }) => {
        const { port, host } = new URL(url)
        for (const target of [
          '/../secret.txt',
          '/%2e%2e/secret.txt',
          '/%2E%2E/secret.txt',
          '/.%2e/secret.txt',
          '/assets/%2e%2e/%2e%2e/secret.txt',
          '/..%2fsecret.txt',
          '/assets/..%2f..%2fsecret.txt',
          '/..%5csecret.txt',
          '/..\\secret.txt',
          '/assets/..%252f..%252fsecret.txt',
          '//../secret.txt',
        ]) {
          for (const accept of ['*/*', html.accept]) {
            const res = await rawRequest(Number(port), {
              method: 'GET',
              target,
              headers: [
                ['host', host],
                ['accept', accept],
              ],
            })
            const where = `${target} (fallback ${fallback}, accept ${accept})`
            expect(res.body, where).not.toContain(SECRET)
            // Refused (Node's parser takes no raw backslash: 400) or nothing there; with the
            // fallback, at most the SPA's own index.html.
            if (fallback === 'false' || accept === '*/*')
              expect([400, 404], where).toContain(res.status)
            else expect([200, 400, 404], where).toContain(res.status)
            if (res.status === 200) expect(res.body, where).toBe(INDEX)
          }
        }
      })
    }
  })
})

describe('BFF_SPA_FALLBACK', () => {
  it('off (the default): a client-side route is a 404', async () => {
    await withServer({ BFF_SPA_DIR: site }, async ({ url }) => {
      const page = await fetch(`${url}/orders/42`, { headers: html })
      expect(page.status).toBe(404)
      expect(await page.text()).toContain('<title>Not found</title>')
    })
  })

  it('on: a navigation to a path that is no file gets index.html; API-looking requests keep the 404', async () => {
    await withServer({ BFF_SPA_DIR: site, BFF_SPA_FALLBACK: 'true' }, async ({ url }) => {
      for (const route of ['/orders/42', '/settings', '/assets/missing.js']) {
        const page = await fetch(`${url}${route}`, { headers: html })
        expect([route, page.status, await page.text()]).toEqual([route, 200, INDEX])
        expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'/)
      }
      const head = await fetch(`${url}/orders/42`, { method: 'HEAD', headers: html })
      expect(head.status).toBe(200)

      const json = await fetch(`${url}/orders/42`, { headers: { accept: 'application/json' } })
      expect([json.status, await json.json()]).toEqual([
        404,
        { error: 'not_found', message: 'Nothing is at this address.' },
      ])
      const post = await fetch(`${url}/orders/42`, { method: 'POST', headers: html })
      expect(post.status).toBe(404)
      // The BFF's namespace and the proxied prefixes are never the SPA's.
      const bff = await fetch(`${url}/bff/no-such-route`, { headers: html })
      expect(bff.status).toBe(404)
      expect(await bff.text()).not.toContain('the spa')
      const api = await fetch(`${url}/api/orders/42`, { headers: html })
      expect(api.status).toBe(403)
      expect(await api.text()).not.toContain('the spa')
      // The file that exists is still itself.
      expect(await (await fetch(`${url}/assets/app.js`, { headers: html })).text()).toContain(
        'console.log'
      )
    })
  })
})

describe('start-up problems', () => {
  async function problemsOf(settings: Record<string, string>) {
    const err = await startNode({ ...PRODUCTION, ...settings }, quiet).then(
      async (server) => {
        await server.close()
        return undefined
      },
      (e: unknown) => e
    )
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }

  it('a missing or unusable directory stops start-up with one line naming BFF_SPA_DIR', async () => {
    const missing = path.join(root, 'nope')
    expect(await problemsOf({ BFF_SPA_DIR: missing, PORT: 'x' })).toEqual([
      'PORT must be a port number, got "x"',
      `BFF_SPA_DIR "${missing}" does not exist`,
    ])
    const file = path.join(root, 'secret.txt')
    expect(await problemsOf({ BFF_SPA_DIR: file })).toEqual([
      `BFF_SPA_DIR "${file}" is not a directory`,
    ])
  })

  it('BFF_SPA_FALLBACK must be a boolean, with a directory that has an index.html', async () => {
    expect(await problemsOf({ BFF_SPA_DIR: site, BFF_SPA_FALLBACK: 'yes' })).toEqual([
      'BFF_SPA_FALLBACK must be true or false, got "yes"',
    ])
    expect(await problemsOf({ BFF_SPA_FALLBACK: 'true' })).toEqual([
      'BFF_SPA_FALLBACK=true needs BFF_SPA_DIR: the directory whose index.html it answers',
    ])
    const assets = path.join(site, 'assets')
    expect(await problemsOf({ BFF_SPA_DIR: assets, BFF_SPA_FALLBACK: 'true' })).toEqual([
      `BFF_SPA_FALLBACK=true needs an index.html in BFF_SPA_DIR "${assets}"`,
    ])
  })
})

describe('production default', () => {
  it('serves nothing at / without BFF_SPA_DIR, not even the demo SPA', async () => {
    await withServer({}, async ({ url }) => {
      for (const route of ['/', '/index.html', '/app.js', '/favicon.ico']) {
        const res = await fetch(`${url}${route}`)
        expect([route, res.status]).toEqual([route, 404])
      }
    })
  })

  it('the demo passes public/, where the favicon is', async () => {
    const server = await startNode(PRODUCTION, { ...quiet, spaDir: DEMO_SPA_DIR })
    try {
      const icon = await fetch(`${server.url}/favicon.ico`)
      expect([icon.status, icon.headers.get('content-type')]).toEqual([200, 'image/x-icon'])
      expect((await fetch(`${server.url}/favicon.svg`)).status).toBe(200)
    } finally {
      await server.close()
    }
  })
})
