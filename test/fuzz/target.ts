/**
 * What the fuzzer attacks: the Node BFF as deployed (startNode, static files on, admin API on),
 * the real IdP, a recording upstream behind `/api/` and a canary upstream that no route names,
 * plus one logged-in session whose tokens, with every configured secret, must never show.
 */
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp, type Idp } from '../../src/demo/idp.ts'
import { memoryStore } from '../../src/core/session/stores/memory.ts'
import type { Session } from '../../src/core/session/types.ts'
import { startNode, type NodeServer } from '../../src/adapters/node/server.ts'
import { captureLog, type CapturedLog } from '../helpers/capture-log.ts'
import { createCookieJar, redirectLocation } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { openSessionCookie } from '../helpers/session-cookie.ts'
import { freePort, startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'

/** The upstream's own path prefix: everything proxied must land under it. */
export const UPSTREAM_BASE = '/base/'
export const USER = 'fuzz-user'

export interface FuzzTarget {
  kind: 'memory' | 'cookie'
  port: number
  url: string
  idp: Idp
  upstream: RecordingUpstream
  canary: RecordingUpstream
  logs: CapturedLog
  adminToken: string
  /** The live session: its cookie header value (`bff=…`, with any chunks), sid and token. */
  session: { cookie: string; sid: string; accessToken: string }
  /** Every secret and token that must never appear in a response or a log line. */
  secrets: string[]
  /** Logs in again when the session was ended (a fuzzed logout can succeed). */
  ensureSession(): Promise<void>
  close(): Promise<void>
}

export async function startFuzzTarget(kind: 'memory' | 'cookie' = 'memory'): Promise<FuzzTarget> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const idp = await startIdp({
    accessTokenTtl: 3600, // no refresh during a run: every token in play is one we know
    clients: [bffClientMetadata({ redirectUris: [`${url}/bff/callback`] })],
  })
  const upstream = await startRecordingUpstream()
  const canary = await startRecordingUpstream()
  const logs = captureLog()
  const secret = randomBytes(32).toString('base64url')
  const adminToken = randomBytes(32).toString('base64url')
  // The memory store is passed in so the test can read the session's tokens from it.
  const store = kind === 'memory' ? memoryStore() : undefined
  const bff: NodeServer = await startNode(
    {
      PORT: String(port),
      BFF_ISSUER: idp.issuer,
      BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
      BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
      BFF_BASE_URL: url,
      BFF_SESSION_SECRET: secret,
      BFF_SESSION_STORE: kind,
      BFF_ADMIN_TOKEN: adminToken,
      BFF_API: `/api/=${upstream.url}${UPSTREAM_BASE}`,
      BFF_UPSTREAM_TIMEOUT: '5',
      // Static files and the SPA fallback are fuzzed too: nothing outside the directory leaks.
      BFF_SPA_DIR: fileURLToPath(new URL('../../public/', import.meta.url)),
      BFF_SPA_FALLBACK: 'true',
    },
    { deps: { log: logs.log, ...(store ? { store } : {}) } }
  )
  const secrets = [secret, DEMO_BFF_CLIENT.clientSecret, adminToken]

  const target: FuzzTarget = {
    kind,
    port,
    url,
    idp,
    upstream,
    canary,
    logs,
    adminToken,
    session: { cookie: '', sid: '', accessToken: '' },
    secrets,
    async ensureSession() {
      if (target.session.cookie) {
        const check = await fetch(`${url}/bff/user`, {
          headers: { cookie: target.session.cookie, 'x-csrf': '1' },
        })
        await check.body?.cancel()
        if (check.status === 200) return
      }
      const jar = createCookieJar({ baseUrl: url })
      const start = await jar.get('/bff/login?returnTo=/')
      const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
        login: USER,
        password: 'pass',
      })
      const done = await jar.follow(atIdp)
      if (done.status !== 302) throw new Error(`login answered ${done.status}`)
      // Cookie mode may split a large session into numbered chunks: send them all.
      const cookies = jar.cookies(url)
      let sealed = cookies.bff!
      for (let i = 1; cookies[`bff.${i}`]; i++) sealed += cookies[`bff.${i}`]
      const ref = (await openSessionCookie(sealed, secret))!
      const session = ('session' in ref ? ref.session : await store!.get(ref)) as Session
      const header = Object.entries(cookies)
        .filter(([name]) => name === 'bff' || name.startsWith('bff.'))
        .map(([name, value]) => `${name}=${value}`)
        .join('; ')
      target.session = {
        cookie: header,
        sid: session.sid,
        accessToken: session.accessToken,
      }
      for (const token of [session.accessToken, session.refreshToken, session.idToken]) {
        if (!token) continue
        secrets.push(token)
        // A JWT's signature alone identifies it as surely as the whole token.
        if (token.split('.').length === 3) secrets.push(token.split('.')[2]!)
      }
    },
    async close() {
      await bff.close()
      await upstream.close()
      await canary.close()
      await idp.stop()
    },
  }
  await target.ensureSession()
  return target
}
