/**
 * Property: no token minted for one resource ever reaches another route's upstream. fast-check
 * draws route layouts (each route `user` or `optional` with or without a resource, `exchange` or
 * `client`; resources shared between routes or not) and a session's calls to them: single or
 * several at once, with the clock moved between them so the session's token and each resource's
 * token expire and are refreshed on their own, and concurrent grants for different resources
 * meet. Each run starts a BFF with the layout (any store the target runs), logs in through the
 * real IdP, and the upstream reads every token it gets. After every call:
 * - a route with a resource got a token whose `aud` is that resource, for the user (`user`,
 *   `optional`, `exchange`) or for the BFF itself (`client`);
 * - a `user` or `optional` route without one got the session's own access token;
 * - a token value never reached routes of two different resources (or of none and one).
 * `ISOLATION_RUNS` sets the runs (default 20 on Node, 3 in workerd), `ISOLATION_SEED` replays one.
 */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import { ALL_STORES, CSRF, TARGET, startStack, unsupported } from './harness.ts'

const RESOURCES = ['https://r1.example', 'https://r2.example/api', 'urn:r3', 'urn:r4'] as const
const RUNS = Number(process.env.ISOLATION_RUNS ?? (TARGET === 'workerd' ? 3 : 20))
const SEED = process.env.ISOLATION_SEED ? Number(process.env.ISOLATION_SEED) : undefined
const STORES = ALL_STORES.filter((store) => !unsupported(store))

type Mode = 'user' | 'optional' | 'exchange' | 'client'
interface RouteSpec {
  mode: Mode
  resource?: (typeof RESOURCES)[number]
}

const route: fc.Arbitrary<RouteSpec> = fc.oneof(
  fc.record({
    mode: fc.constantFrom<Mode>('user', 'optional'),
    resource: fc.option(fc.constantFrom(...RESOURCES), { nil: undefined }),
  }),
  fc.record({ mode: fc.constant<Mode>('exchange'), resource: fc.constantFrom(...RESOURCES) }),
  fc.record({
    mode: fc.constant<Mode>('client'),
    resource: fc.option(fc.constantFrom(...RESOURCES), { nil: undefined }),
  })
)

/** A step: the clock moved forward, then calls to these routes (indexes, modulo) at once. */
const step = fc.record({
  advance: fc.constantFrom(0, 0, 20, 45, 90, 400),
  routes: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }),
})

const scenario = fc.record({
  store: fc.constantFrom(...STORES),
  routes: fc.array(route, { minLength: 2, maxLength: 6 }),
  steps: fc.array(step, { minLength: 4, maxLength: 12 }),
})

/** The class of token a route must get: its resource, or the session's own token. */
const classOf = (spec: RouteSpec) =>
  spec.resource ?? (spec.mode === 'client' ? 'client' : 'session')

describe('no token for one resource reaches another route (property)', () => {
  it(
    `holds over random route layouts and call sequences (${RUNS} runs)`,
    async () => {
      await fc.assert(
        fc.asyncProperty(scenario, async ({ store, routes, steps }) => {
          const stack = await startStack({
            store,
            inspectTokens: true,
            // Steps may call only `client` routes for a while: the session must not idle out.
            env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret, BFF_IDLE_TIMEOUT: '36000' },
            idp: {
              // Lifetimes apart from the session's (60 s): each token is renewed on its own.
              resourceServers: {
                'https://r1.example': { ttl: 600 },
                'urn:r3': { format: 'opaque', ttl: 120 },
                'urn:r4': { format: 'opaque' },
              },
            },
            configFile: ({ issuer, upstream }) => ({
              idps: {
                demo: {
                  issuer,
                  clientId: DEMO_BFF_CLIENT.clientId,
                  clientSecret: '${TEST_IDP_SECRET}',
                },
              },
              routes: routes.map((spec, i) => ({
                prefix: `/r${i}/`,
                upstream: `${upstream}/r${i}/`,
                ...(spec.mode === 'user' ? {} : { token: spec.mode }),
                ...(spec.resource ? { resource: spec.resource } : {}),
              })),
            }),
          })
          try {
            const jar = stack.jar()
            expect((await stack.login(jar)).status).toBe(302)
            // Token value -> the class of every route it reached.
            const reached = new Map<string, Set<string>>()
            let call = 0
            for (const { advance, routes: picks } of steps) {
              stack.advance(advance)
              const batch = picks.map((pick) => ({ index: pick % routes.length, n: call++ }))
              const responses = await Promise.all(
                batch.map(({ index, n }) => jar.get(`/r${index}/c${n}`, { headers: CSRF }))
              )
              expect(responses.map((r) => r.status)).toEqual(batch.map(() => 200))
              const session = (await stack.sessionOf(jar))!
              for (const { index, n } of batch) {
                const spec = routes[index]!
                const seen = stack.upstream.requests.find((r) => r.url === `/r${index}/c${n}`)!
                const token = seen.headers.authorization!.replace(/^Bearer /, '')
                const view = seen.token!
                expect(view.active).toBe(true)
                if (spec.mode === 'client') {
                  // The BFF's own token: no user in it (introspection names none, a JWT the client).
                  expect(view.client_id).toBe(DEMO_BFF_CLIENT.clientId)
                  expect(view.sub).not.toBe('alice')
                  if (spec.resource) expect(view.aud).toBe(spec.resource)
                  else expect(RESOURCES).not.toContain(view.aud)
                } else if (spec.resource) {
                  expect(view.aud).toBe(spec.resource)
                  expect(view.sub).toBe('alice')
                } else {
                  expect(RESOURCES).not.toContain(view.aud)
                  expect(view.sub).toBe('alice')
                  // The call that was last to store the session wrote its own token: a parallel
                  // one may have used the generation before. Never a resource's.
                  if (batch.length === 1) expect(token).toBe(session.accessToken)
                }
                const classes = reached.get(token) ?? new Set<string>()
                classes.add(classOf(spec))
                reached.set(token, classes)
              }
            }
            for (const classes of reached.values()) expect(classes.size).toBe(1)
          } finally {
            await stack.close()
          }
        }),
        { numRuns: RUNS, seed: SEED, endOnFailure: true }
      )
    },
    RUNS * 30_000
  )
})
