/** createBff as a library: mounted inside an app that has routes of its own. */
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { createBff, parseConfig } from '../../src/index.ts'

const config = parseConfig({
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'spa',
  BFF_CLIENT_SECRET: 'secret',
  BFF_BASE_URL: 'https://app.example.com',
  BFF_SESSION_SECRET: 'a'.repeat(40),
  BFF_API: '/api/=https://api.example.com/',
})

describe('createBff', () => {
  const host = new Hono()
  host.get('/', (c) => c.text('host home'))
  host.get('/about', (c) => c.text('host about'))
  // No IdP here: its discovery fails as a connection to a host that does not exist would.
  const noIdp: typeof fetch = () => Promise.reject(new TypeError('fetch failed'))
  host.route('/', createBff(config, { log: () => {}, fetch: noIdp }))
  host.get('/later', (c) => c.text('host route after the BFF'))

  it('serves its endpoints inside the host app', async () => {
    const health = await host.request('https://app.example.com/bff/health')
    expect(health.status).toBe(503)
    expect(await health.json()).toMatchObject({
      status: 'unavailable',
      store: 'cookie',
      idp: 'unreachable',
      error: 'idp_unavailable',
    })
    const user = await host.request('https://app.example.com/bff/user', {
      headers: { 'x-csrf': '1' },
    })
    expect(user.status).toBe(401)
    expect(await user.json()).toMatchObject({ error: 'unauthenticated' })
  })

  it("leaves the host's own routes alone, before and after it", async () => {
    expect(await (await host.request('https://app.example.com/')).text()).toBe('host home')
    expect(await (await host.request('https://app.example.com/about')).text()).toBe('host about')
    expect(await (await host.request('https://app.example.com/later')).text()).toBe(
      'host route after the BFF'
    )
  })

  it('guards its API routes in the host app', async () => {
    const response = await host.request('https://app.example.com/api/x')
    expect(response.status).toBe(403)
  })

  it('refuses a store it cannot build itself', () => {
    const redisConfig = parseConfig({
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'spa',
      BFF_CLIENT_SECRET: 'secret',
      BFF_BASE_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: 'a'.repeat(40),
      BFF_SESSION_STORE: 'redis',
    })
    expect(() => createBff(redisConfig)).toThrow(/deps\.store/)
  })
})
