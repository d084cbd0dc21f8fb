/**
 * `GET /bff/health`: liveness, whether the session store answers, and whether each IdP's discovery
 * document could be read (a mistyped issuer shows here, not only at the first login). With several
 * IdPs, one away makes the BFF `degraded` (200: the others' users still log in) and `idps` says
 * which; all away, or the store, is 503.
 */
import { Hono } from 'hono'
import { errorReason } from '../observe/log.ts'
import type { IdpStatus } from '../oidc/types.ts'
import type { BffServices } from '../services.ts'

const PING_TIMEOUT_MS = 2000

/** One IdP's line in the answer's `idps`. */
interface IdpHealth {
  name: string
  status: IdpStatus['idp']
  /** What was wrong (no secret in it: a URL, a status, a connection error code). */
  message?: string
}

export function healthRoute(s: BffServices) {
  return new Hono().get('/bff/health', async (c) => {
    const store = s.sessions.store.kind
    c.header('Cache-Control', 'no-store')
    let timer: ReturnType<typeof setTimeout> | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('ping timeout')), PING_TIMEOUT_MS)
    })
    // All at once; a discovery still under way when the time is up counts as unreachable.
    const [ping, ...statuses] = await Promise.allSettled([
      Promise.race([s.sessions.store.ping(), timeout]),
      ...s.idps.list.map((idp) => Promise.race([idp.oidc.idpStatus(), timeout])),
    ])
    clearTimeout(timer)
    const idps: IdpHealth[] = s.idps.list.map((idp, i) => {
      const result = statuses[i]!
      const status: IdpStatus =
        result.status === 'fulfilled'
          ? (result.value as IdpStatus)
          : { idp: 'unreachable', message: 'no answer in time' }
      return status.idp === 'ok'
        ? { name: idp.config.name, status: 'ok' }
        : { name: idp.config.name, status: 'unreachable', message: status.message }
    })
    const down = idps.filter((idp) => idp.status !== 'ok')
    const idp = down.length === 0 ? 'ok' : down.length === idps.length ? 'unreachable' : 'degraded'
    if (ping.status === 'rejected') {
      s.log('warn', 'health.store_unavailable', { store, reason: errorReason(ping.reason) })
      s.metrics.storeError()
      return c.json(
        {
          status: 'unavailable',
          store,
          idp,
          idps,
          error: 'store_unavailable',
          message: 'The session store is unavailable.',
        },
        503
      )
    }
    if (idp === 'ok') return c.json({ status: 'ok', store, idp, idps })
    const what =
      idps.length === 1
        ? `The identity provider's discovery failed: ${down[0]!.message}`
        : `The discovery of ${down.map((one) => `${one.name} (${one.message})`).join(', ')} failed.`
    if (idp === 'degraded') {
      return c.json({ status: 'degraded', store, idp, idps, message: what })
    }
    return c.json(
      { status: 'unavailable', store, idp, idps, error: 'idp_unavailable', message: what },
      503
    )
  })
}
