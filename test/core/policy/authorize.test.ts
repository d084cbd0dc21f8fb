/**
 * The policy point's own rules, with the PDP's fetch injected (the HTTP PDP itself is in
 * test/integration/authorize.test.ts): the decision cache is bounded and least-recently-used,
 * concurrent calls share one PDP call, the timeout covers the answer's body, and a call without
 * a session is asked about without user fields and never cached.
 */
import { describe, expect, it } from 'vitest'
import type { ApiRoute } from '../../../src/core/config/options.ts'
import { BffError } from '../../../src/core/errors.ts'
import { silentLogger } from '../../../src/core/observe/log.ts'
import { policyPoint } from '../../../src/core/policy/authorize.ts'
import type { Session } from '../../../src/core/session/types.ts'

const route: ApiRoute = {
  prefix: '/api/',
  upstream: new URL('http://upstream.example/'),
  authorize: { url: new URL('http://pdp.example/v1/data/allow'), cacheSeconds: 60 },
}

const session: Session = {
  id: 'session-id',
  sid: 'sid',
  sub: 'alice',
  claims: { sub: 'alice', email: 'alice@example.com' },
  accessToken: 'access-token',
  accessTokenExpiresAt: 0,
  createdAt: 0,
  expiresAt: 0,
  generation: 1,
}

/** A PDP as a fetch function: records the inputs, answers `{ result: true }`. */
function fakePdp(answer: () => Response | Promise<Response> = () => allow()) {
  const inputs: Record<string, unknown>[] = []
  const fetch = (async (_url: URL, init: RequestInit) => {
    inputs.push(JSON.parse(init.body as string).input)
    return answer()
  }) as unknown as typeof globalThis.fetch
  return { inputs, fetch }
}
const allow = () => Response.json({ result: true })

describe('policyPoint', () => {
  it('keeps at most maxDecisions, dropping the least recently used', async () => {
    const pdp = fakePdp()
    const policy = policyPoint({
      fetch: pdp.fetch,
      now: Date.now,
      log: silentLogger,
      maxDecisions: 2,
    })
    const ask = (path: string) => policy.authorize(route, 'GET', `/api/${path}`, session)
    await ask('a')
    await ask('b')
    await ask('a') // a is now the most recent
    expect(pdp.inputs).toHaveLength(2)
    await ask('c') // b goes
    await ask('a')
    await ask('c')
    expect(pdp.inputs).toHaveLength(3)
    await ask('b')
    expect(pdp.inputs.map((input) => input.path)).toEqual(['a', 'b', 'c', 'b'])
  })

  it('shares one PDP call among concurrent calls asking the same', async () => {
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const pdp = fakePdp(async () => {
      await gate
      return allow()
    })
    const policy = policyPoint({ fetch: pdp.fetch, now: Date.now, log: silentLogger })
    const calls = Array.from({ length: 20 }, () =>
      policy.authorize(route, 'GET', '/api/same', session)
    )
    release()
    await Promise.all(calls)
    expect(pdp.inputs).toHaveLength(1)
  })

  it('shares a failure too, and remembers none of it', async () => {
    let fail = true
    const pdp = fakePdp(() => (fail ? new Response('no', { status: 500 }) : allow()))
    const policy = policyPoint({ fetch: pdp.fetch, now: Date.now, log: silentLogger })
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => policy.authorize(route, 'GET', '/api/x', session))
    )
    expect(results.every((r) => r.status === 'rejected')).toBe(true)
    expect(((results[0] as PromiseRejectedResult).reason as BffError).status).toBe(503)
    fail = false
    await policy.authorize(route, 'GET', '/api/x', session)
    expect(pdp.inputs).toHaveLength(2)
  })

  it('times out an answer whose body never ends', async () => {
    const pdp = fakePdp(
      () =>
        new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode('{')) }))
    )
    const policy = policyPoint({
      fetch: pdp.fetch,
      now: Date.now,
      log: silentLogger,
      timeoutMs: 50,
    })
    const started = Date.now()
    const refused = await policy.authorize(route, 'GET', '/api/x', session).catch((err) => err)
    expect(refused).toBeInstanceOf(BffError)
    expect(refused).toMatchObject({ status: 503, code: 'policy_unavailable' })
    expect(Date.now() - started).toBeLessThan(1000)
  })

  it('asks without user fields when there is no session, and caches nothing', async () => {
    const pdp = fakePdp()
    const policy = policyPoint({ fetch: pdp.fetch, now: Date.now, log: silentLogger })
    await policy.authorize(route, 'GET', '/api/public', undefined)
    await policy.authorize(route, 'GET', '/api/public', undefined)
    expect(pdp.inputs).toEqual([
      { route: '/api/', method: 'GET', path: 'public' },
      { route: '/api/', method: 'GET', path: 'public' },
    ])
  })

  it('gives the IdP, acr, scopes and the normalised claims when the session has them', async () => {
    const pdp = fakePdp()
    const policy = policyPoint({
      fetch: pdp.fetch,
      now: Date.now,
      log: silentLogger,
      claims: { roles: 'realm_access.roles' },
    })
    const full = {
      ...session,
      idp: 'corp',
      scope: 'openid orders:read',
      claims: { ...session.claims, acr: 'mfa', realm_access: { roles: ['admin'] } },
    }
    await policy.authorize(route, 'GET', '/api/x', full)
    expect(pdp.inputs[0]).toEqual({
      route: '/api/',
      method: 'GET',
      path: 'x',
      idp: 'corp',
      sub: 'alice',
      claims: { ...full.claims, roles: ['admin'] },
      acr: 'mfa',
      scopes: ['openid', 'orders:read'],
    })
  })

  it('counts each refusal with the other policies, by route and reason', async () => {
    let answer = () => Response.json({ result: false })
    const pdp = fakePdp(() => answer())
    const denials: Array<[string, string]> = []
    const metrics = {
      policyDenial: (prefix: string, reason: string) => denials.push([prefix, reason]),
    }
    const policy = policyPoint({ fetch: pdp.fetch, now: Date.now, log: silentLogger, metrics })
    const uncached = { ...route, authorize: { ...route.authorize!, cacheSeconds: 0 } }
    await expect(policy.authorize(uncached, 'GET', '/api/x', session)).rejects.toThrow()
    answer = () => new Response('down', { status: 503 })
    await expect(policy.authorize(uncached, 'GET', '/api/x', session)).rejects.toThrow()
    expect(denials).toEqual([
      ['/api/', 'forbidden'],
      ['/api/', 'policy_unavailable'],
    ])
  })

  it('does nothing on a route without authorize', async () => {
    const pdp = fakePdp()
    const policy = policyPoint({ fetch: pdp.fetch, now: Date.now, log: silentLogger })
    await policy.authorize({ ...route, authorize: undefined }, 'GET', '/api/x', session)
    expect(pdp.inputs).toHaveLength(0)
  })
})
