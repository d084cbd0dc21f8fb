/**
 * `GET /bff/health`: liveness, whether the session store answers, and whether the IdP's discovery
 * document could be read (a mistyped `BFF_ISSUER` shows here, not only at the first login).
 */
import { Hono } from 'hono'
import { errorReason } from '../observe/log.ts'
import type { BffServices } from '../services.ts'

const PING_TIMEOUT_MS = 2000

export function healthRoute(s: BffServices) {
  return new Hono().get('/bff/health', async (c) => {
    const store = s.sessions.store.kind
    c.header('Cache-Control', 'no-store')
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('ping timeout')), PING_TIMEOUT_MS)
    })
    // Both at once; a discovery still under way when the time is up counts as unreachable.
    const [ping, idp] = await Promise.allSettled([
      Promise.race([s.sessions.store.ping(), timeout]),
      Promise.race([s.oidc.idpStatus(), timeout]),
    ])
    clearTimeout(timer)
    const idpStatus =
      idp.status === 'fulfilled'
        ? idp.value
        : ({ idp: 'unreachable', message: 'no answer in time' } as const)
    if (ping.status === 'rejected') {
      s.log('warn', 'health.store_unavailable', { store, reason: errorReason(ping.reason) })
      return c.json(
        {
          status: 'unavailable',
          store,
          idp: idpStatus.idp,
          error: 'store_unavailable',
          message: 'The session store is unavailable.',
        },
        503
      )
    }
    if (idpStatus.idp === 'unreachable') {
      return c.json(
        {
          status: 'unavailable',
          store,
          idp: 'unreachable',
          error: 'idp_unavailable',
          // What was wrong (no secret in it: a URL, a status, a connection error code).
          message: `The identity provider's discovery document could not be read: ${idpStatus.message}`,
        },
        503
      )
    }
    return c.json({ status: 'ok', store, idp: 'ok' })
  })
}
