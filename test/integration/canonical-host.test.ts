/**
 * The demo opened at http://127.0.0.1:PORT while BFF_BASE_URL says http://localhost:PORT (or the
 * reverse): browser navigations are sent to BFF_BASE_URL before a login starts, so its cookies
 * land on the host the callback comes back to. Nothing else is redirected.
 *
 * node:http rather than fetch: fetch always sends `Sec-Fetch-Mode: cors` and its own Host, and
 * these requests must look like a browser's navigation to a chosen host.
 */
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startStack, type Stack } from './harness.ts'

let stack: Stack
let port: number

beforeAll(async () => {
  stack = await startStack({ baseUrl: (p) => `http://localhost:${p}` })
  port = Number(new URL(stack.url).port)
})
afterAll(async () => {
  await stack.close()
})

interface Answer {
  status: number
  location?: string
  setCookie: string[]
}

/** One request to the BFF on 127.0.0.1 with exactly these headers (Host included). */
function send(method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<Answer>((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers, agent: false, setHost: false },
      (res) => {
        res.resume()
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            location: res.headers.location,
            setCookie: res.headers['set-cookie'] ?? [],
          })
        )
      }
    )
    req.on('error', reject)
    req.end(body)
  })
}

const NAVIGATE = { accept: 'text/html,application/xhtml+xml', 'sec-fetch-mode': 'navigate' }
const ip = () => `127.0.0.1:${port}`

describe('another loopback name for the same BFF', () => {
  it('sends a browser navigation to /bff/login to BFF_BASE_URL before any cookie is set', async () => {
    const answer = await send('GET', '/bff/login?returnTo=%2Fafter', { host: ip(), ...NAVIGATE })
    expect(answer.status).toBe(307)
    expect(answer.location).toBe(`http://localhost:${port}/bff/login?returnTo=%2Fafter`)
    expect(answer.setCookie).toEqual([])
  })

  it('redirects page loads too, also without Fetch Metadata when HTML is accepted', async () => {
    const page = await send('GET', '/some/page?x=1', { host: ip(), accept: 'text/html' })
    expect(page.status).toBe(307)
    expect(page.location).toBe(`http://localhost:${port}/some/page?x=1`)
    const head = await send('HEAD', '/', { host: `[::1]:${port}`, ...NAVIGATE })
    expect(head.status).toBe(307)
    expect(head.location).toBe(`http://localhost:${port}/`)
  })

  it('on BFF_BASE_URL itself, the login starts and sets its transaction cookie', async () => {
    const answer = await send('GET', '/bff/login?returnTo=%2Fafter', {
      host: `localhost:${port}`,
      ...NAVIGATE,
    })
    expect(answer.status).toBe(302)
    expect(answer.location).toContain(stack.idp.issuer)
    expect(answer.setCookie.some((line) => line.startsWith('bff-tx.'))).toBe(true)
  })

  it('never redirects API calls, fetches or writes', async () => {
    const user = await send('GET', '/bff/user', { host: ip(), ...NAVIGATE, 'x-csrf': '1' })
    expect(user.status).toBe(401)
    // fetch() from a page: Sec-Fetch-Mode cors, even when it accepts HTML.
    const fetched = await send('GET', '/bff/login', {
      host: ip(),
      accept: 'text/html',
      'sec-fetch-mode': 'cors',
    })
    expect(fetched.status).toBe(302)
    expect(fetched.location).toContain(stack.idp.issuer)
    const post = await send(
      'POST',
      '/api/echo',
      {
        host: ip(),
        ...NAVIGATE,
        'x-csrf': '1',
        'content-type': 'text/plain',
        'content-length': '4',
      },
      'kept'
    )
    expect(post.status).toBe(401)
  })

  it('never redirects for a host that is not loopback, or another port', async () => {
    for (const host of [
      `evil.example:${port}`,
      `127.0.0.1.evil.example:${port}`,
      `localhost.evil.example:${port}`,
      // Another port is another server (a dev proxy in front, say): left alone.
      `127.0.0.1:${port + 1}`,
    ]) {
      const answer = await send('GET', '/bff/login', { host, ...NAVIGATE })
      expect(answer.status, host).toBe(302)
      expect(answer.location, host).toContain(stack.idp.issuer)
    }
  })

  it('keeps a path shaped like a host on BFF_BASE_URL: never an open redirect', async () => {
    const answer = await send('GET', '//evil.example/x', { host: ip(), ...NAVIGATE })
    expect(answer.status).toBe(307)
    expect(new URL(answer.location!).origin).toBe(`http://localhost:${port}`)
  })
})
