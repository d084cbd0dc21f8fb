/** `GET /bff/health`: liveness and whether the session store answers. */
import { Hono } from 'hono'
import { errorReason } from '../log.ts'
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
    try {
      await Promise.race([s.sessions.store.ping(), timeout])
      return c.json({ status: 'ok', store })
    } catch (err) {
      s.log('warn', 'health.store_unavailable', { store, reason: errorReason(err) })
      return c.json(
        {
          status: 'unavailable',
          store,
          error: 'store_unavailable',
          message: 'The session store is unavailable.',
        },
        503
      )
    } finally {
      clearTimeout(timer)
    }
  })
}
