/**
 * A small admin API, off unless `BFF_ADMIN_TOKEN` is set: list a user's sessions and end one or all.
 *   GET    /bff/admin/sessions?sub=…          -> { sessions: [{ sid, createdAt, expiresAt, absoluteExpiresAt }] }
 *   DELETE /bff/admin/sessions?sub=…[&sid=…]  -> { ended }
 * Bearer-protected with a constant-time compare. Never returns a token or a session id.
 */
import { Hono } from 'hono'
import { BffError } from '../errors.ts'
import { subjectHash } from '../log.ts'
import { constantTimeEqual, refuseCrossSiteWrite } from '../security.ts'
import type { BffServices } from '../services.ts'

export function adminRoute(s: BffServices) {
  const app = new Hono()
  const token = s.config.adminToken
  if (!token) return app

  app.use('/bff/admin/*', async (c, next) => {
    c.header('Cache-Control', 'no-store')
    refuseCrossSiteWrite(c)
    const given = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '')?.[1] ?? ''
    if (!(await constantTimeEqual(given, token))) {
      c.header('WWW-Authenticate', 'Bearer realm="bff-admin"')
      s.log('warn', 'admin.unauthorized', { path: new URL(c.req.url).pathname })
      throw new BffError(401, 'unauthenticated', 'A valid admin bearer token is required.')
    }
    await next()
  })

  app.get('/bff/admin/sessions', async (c) => {
    const sub = requiredSub(c.req.query('sub'))
    const store = s.sessions.store
    if (!store.listBySub) {
      throw new BffError(
        501,
        'not_supported',
        `The ${store.kind} store cannot list sessions: they live only in the browsers' cookies.`
      )
    }
    const sessions = await store.listBySub(sub)
    return c.json({
      sessions: sessions.map((session) => ({
        sid: session.sid,
        createdAt: session.createdAt,
        expiresAt: session.expiresAt,
        absoluteExpiresAt: session.absoluteExpiresAt ?? session.expiresAt,
      })),
    })
  })

  app.delete('/bff/admin/sessions', async (c) => {
    const sub = requiredSub(c.req.query('sub'))
    const sid = c.req.query('sid')
    const store = s.sessions.store
    let ended: number
    if (sid) {
      // Only a session of this subject: an admin naming the wrong pair ends nothing.
      if (store.listBySub && !(await store.listBySub(sub)).some((x) => x.sid === sid)) ended = 0
      else ended = await store.deleteBySid(sid)
    } else {
      ended = await store.deleteBySub(sub)
    }
    s.log('info', 'admin.revoke', { sub: await subjectHash(sub), one: Boolean(sid), ended })
    return c.json({ ended })
  })

  return app
}

function requiredSub(sub: string | undefined): string {
  if (!sub) throw new BffError(400, 'invalid_request', 'The "sub" query parameter is required.')
  return sub
}
