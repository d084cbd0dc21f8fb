/**
 * A WebSocket outliving its access token (README "WebSocket routes"): the upstream checked the
 * token once, at the upgrade. With a server-side store the BFF refreshes the session when the
 * token is due and the socket stays open; when the IdP refuses the refresh, the session ends and
 * the socket closes with 1008. In the `cookie` store the session cannot be refreshed from a socket
 * (the browser's cookie would keep a spent refresh token): the socket closes with 1008
 * `token_expired` when the token expires, and opening it again refreshes the session, the new
 * cookie coming with the 101. Tokens live 4 s at the IdP, so these tests wait for real. On Node
 * and in workerd (there, the `durable-object` store refreshes at the session's object).
 */
import * as client from 'openid-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT } from '../../src/demo/idp.ts'
import type { CookieJar } from '../helpers/http.ts'
import { closed, nextMessage, openSocket, socketOf, until } from '../helpers/ws-client.ts'
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.ts'
import { CSRF, describeStores, startStack, type Stack } from './harness.ts'

const TOKEN_TTL = 4

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function echoes(ws: import('ws').WebSocket, text: string): Promise<boolean> {
  ws.send(text)
  return (await nextMessage(ws)).data.toString() === text
}

describe('WebSockets and token expiry', () =>
  describeStores(
    ['memory', 'redis', 'cookie', 'durable-object'],
    'a WebSocket past its token (%s store)',
    (store) => {
      let upstream: WsUpstream
      let stack: Stack

      beforeAll(async () => {
        upstream = await startWsUpstream()
        stack = await startStack({
          store,
          accessTokenTtl: TOKEN_TTL,
          env: { TEST_IDP_SECRET: DEMO_BFF_CLIENT.clientSecret },
          configFile: ({ issuer }) => ({
            idps: {
              corp: {
                issuer,
                clientId: DEMO_BFF_CLIENT.clientId,
                clientSecret: '${TEST_IDP_SECRET}',
              },
            },
            routes: [{ prefix: '/live/', upstream: `${upstream.url}/ws/`, websocket: true }],
          }),
        })
      })
      afterAll(async () => {
        await stack?.close()
        await upstream?.close()
      })

      const login = async (user: string): Promise<CookieJar> => {
        const jar = stack.jar()
        expect((await stack.login(jar, { user })).status).toBe(302)
        return jar
      }

      if (store === 'cookie') {
        it(
          'closes with 1008 token_expired when the token expires; opened again, it refreshes the session',
          { timeout: 30_000 },
          async () => {
            const jar = await login('carol')
            const before = (await stack.sessionOf(jar))!
            const ws = await socketOf(openSocket(stack, '/live/echo', { jar }))
            const end = await closed(ws)
            expect(end).toMatchObject({ code: 1008, reason: 'token_expired' })
            // At the token's expiry, not before (a little slack for a loaded machine).
            expect(end.ms).toBeGreaterThan((TOKEN_TTL - 1.5) * 1000)
            expect(end.ms).toBeLessThan((TOKEN_TTL + 3) * 1000)
            const again = await socketOf(openSocket(stack, '/live/echo', { jar }))
            // The refreshed session came in the 101's Set-Cookie, and the page's calls use it.
            const after = (await stack.sessionOf(jar))!
            expect(after.generation).toBeGreaterThan(before.generation)
            expect(after.refreshToken).not.toBe(before.refreshToken)
            expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
            expect(await echoes(again, 'fresh')).toBe(true)
            again.close()
          }
        )
        return
      }

      it(
        'stays open past the token, the session refreshed while it is open',
        { timeout: 30_000 },
        async () => {
          const jar = await login('dave')
          const before = (await stack.sessionOf(jar))!
          const ws = await socketOf(openSocket(stack, '/live/echo', { jar }))
          let ended = false
          ws.once('close', () => (ended = true))
          await sleep((TOKEN_TTL * 2 + 1) * 1000)
          expect(ended).toBe(false)
          expect(await echoes(ws, 'still open')).toBe(true)
          const after = (await stack.sessionOf(jar))!
          expect(after.generation).toBeGreaterThan(before.generation)
          expect(after.accessTokenExpiresAt).toBeGreaterThan(Date.now() / 1000)
          // The page's own calls go on with the refreshed session.
          expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
          ws.close()
        }
      )

      it(
        'closes with 1008 session_ended:refresh_failed when the IdP refuses the refresh',
        { timeout: 30_000 },
        async () => {
          const jar = await login('erin')
          const session = (await stack.sessionOf(jar))!
          const ws = await socketOf(openSocket(stack, '/live/echo', { jar }))
          const count = upstream.closes.length
          const ending = closed(ws)
          const config = await client.discovery(
            new URL(stack.idp.issuer),
            DEMO_BFF_CLIENT.clientId,
            DEMO_BFF_CLIENT.clientSecret,
            undefined,
            { execute: [client.allowInsecureRequests] }
          )
          await client.tokenRevocation(config, session.refreshToken!)
          const end = await ending
          expect(end).toMatchObject({ code: 1008, reason: 'session_ended:refresh_failed' })
          // Around the token's expiry, not at some later event: the refresh is due before it,
          // and a loaded machine (CI, 2 cores) runs that timer and the IdP's answer late by
          // seconds, so the bound is two lifetimes.
          expect(end.ms).toBeLessThan(TOKEN_TTL * 2 * 1000)
          await until(() => upstream.closes.length > count)
          expect(upstream.closes.at(-1)).toEqual({
            code: 1008,
            reason: 'session_ended:refresh_failed',
          })
          // The session has ended for the page too.
          expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(401)
        }
      )
    }
  ))
