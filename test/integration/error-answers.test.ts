/**
 * Error answers for browser navigations and API callers, on Node and in workerd. An address under
 * no BFF route and no API prefix (and no static file: the test servers serve none) answers like
 * every other error: 404 `not_found` JSON for API callers, the readable page for navigations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CSRF, startStack, type Stack } from './harness.ts'

describe('an address nothing serves', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.close())

  it('answers 404 not_found JSON to API callers, whatever the method', async () => {
    for (const [method, headers] of [
      ['GET', {}],
      ['GET', CSRF],
      ['POST', { ...CSRF, 'content-type': 'application/json' }],
      ['PUT', { accept: 'application/json' }],
    ] as const) {
      const response = await fetch(`${stack.url}/nothing/here.js`, {
        method,
        headers,
        ...(method === 'GET' ? {} : { body: '{}' }),
      })
      expect(response.status, method).toBe(404)
      expect(response.headers.get('content-type')).toMatch(/^application\/json/)
      expect(await response.json()).toEqual({
        error: 'not_found',
        message: 'Nothing is at this address.',
      })
    }
  })

  it('answers the readable page to a browser navigation', async () => {
    const response = await fetch(`${stack.url}/nothing/here`, {
      headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
    })
    expect(response.status).toBe(404)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    expect(response.headers.get('content-security-policy')).toMatch(/^default-src 'none'/)
    const html = await response.text()
    expect(html).toContain('<title>Not found</title>')
    expect(html).toContain('href="/"')
  })

  it('an unknown /bff/ endpoint stays 404 not_found JSON', async () => {
    const response = await fetch(`${stack.url}/bff/nope`, { headers: CSRF })
    expect(response.status).toBe(404)
    expect(await response.json()).toMatchObject({ error: 'not_found' })
  })
})

describe('a logged-in user opening an API address in the address bar', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack()
  })
  afterAll(() => stack.close())

  it('gets the page saying the address is for the app, leading to its start page, not a login', async () => {
    const jar = stack.jar()
    expect((await stack.login(jar)).status).toBe(302)
    const response = await jar.get('/api/hello', {
      headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
    })
    expect(response.status).toBe(403)
    const html = await response.text()
    expect(html).toContain('<title>This address is for the app</title>')
    expect(html).toContain('href="/"')
    expect(html).not.toContain('/bff/login')
    expect(html).not.toContain('Please log in')
    // The session is untouched: the app's own calls still work.
    expect((await jar.get('/api/hello', { headers: CSRF })).status).toBe(200)
  })
})
