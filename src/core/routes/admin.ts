/**
 * A small admin API, off unless `BFF_ADMIN_TOKEN` is set: list a user's sessions and end one or all.
 *   GET    /bff/admin/sessions?sub=…[&idp=…]          -> { sessions: [{ idp, sid, createdAt, expiresAt, absoluteExpiresAt }] }
 *   DELETE /bff/admin/sessions?sub=…[&idp=…][&sid=…]  -> { ended } ({ ended: 0, counted: false }
 *                                                        and no sid form in cookie mode: see below)
 * A user is the pair (idp, sub): with several IdPs `idp` is required, with one it defaults to it.
 * Bearer-protected with a constant-time compare. Never returns a token or a session id.
 */
import { Hono } from 'hono'
import { BffError } from '../errors.ts'
import { subjectHash } from '../observe/log.ts'
import { constantTimeEqual } from '../policy/constant-time.ts'
import { refuseCrossSiteWrite } from '../policy/csrf.ts'
import type { BffServices } from '../services.ts'
import type { Session, SessionStore } from '../session/types.ts'
import { tellSessionEnd } from '../session/ends.ts'

export function adminRoute(s: BffServices) {
  const app = new Hono()
  const token = s.config.adminToken
  if (!token) return app

  app.use('/bff/admin/*', async (c, next) => {
    c.header('Cache-Control', 'no-store')
    await refuseCrossSiteWrite(c, s.audit, '/bff/admin/sessions')
    // Auth schemes are case-insensitive (RFC 9110 11.1): "bearer" is "Bearer".
    const given = /^Bearer +(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1] ?? ''
    if (!(await constantTimeEqual(given, token))) {
      c.header('WWW-Authenticate', 'Bearer realm="bff-admin"')
      s.log('warn', 'admin.unauthorized', { path: new URL(c.req.url).pathname })
      throw new BffError(401, 'unauthenticated', 'A valid admin bearer token is required.')
    }
    await next()
  })

  app.get('/bff/admin/sessions', async (c) => {
    const sub = requiredSub(c.req.query('sub'))
    const idp = idpOf(s, c.req.queries('idp'))
    // A store that cannot list (sessions in browsers' cookies) refuses: 501 not_supported.
    const sessions = ofIdp(s, idp, await s.sessions.store.listBySub(sub, idp))
    return c.json({
      sessions: sessions.map((session) => ({
        idp,
        sid: session.sid,
        createdAt: session.createdAt,
        expiresAt: session.expiresAt,
        absoluteExpiresAt: session.absoluteExpiresAt ?? session.expiresAt,
      })),
    })
  })

  app.delete('/bff/admin/sessions', async (c) => {
    const sub = requiredSub(c.req.query('sub'))
    const idp = idpOf(s, c.req.queries('idp'))
    const sid = c.req.query('sid')
    const store = s.sessions.store
    // Sessions that live in browsers' cookies can be revoked, but not counted, nor can a sid be
    // matched to its user: ending "the session sid of sub" could end another user's session.
    let ended: number
    let counted: boolean
    if (sid) {
      const own = await listed(store, sub, idp)
      if (!own) {
        throw new BffError(
          501,
          'not_supported',
          `The ${store.kind} store cannot tell whose session a sid is: end all of the user's sessions (without sid), or use back-channel logout.`
        )
      }
      // Only a session of this user: an admin naming the wrong pair ends nothing.
      const theirs = ofIdp(s, idp, own).some((x) => x.sid === sid)
      ended = theirs ? await store.deleteBySid(sid, idp) : 0
      counted = true
      if (theirs) await tellSessionEnd(s, { reason: 'admin_revoke', sid, idp })
    } else {
      ended = await store.deleteBySub(sub, idp)
      await tellSessionEnd(s, { reason: 'admin_revoke', sub, idp })
      // Asked after the deletion, when a store that can list has nothing left to read.
      counted = (await listed(store, sub, idp)) !== null
    }
    s.metrics.logout('admin')
    s.log('info', 'admin.revoke', { idp, sub: await subjectHash(sub), one: Boolean(sid), ended })
    await s.audit(c, 'admin_revoke', {
      sub,
      idp,
      route: '/bff/admin/sessions',
      reason: sid ? 'one' : 'all',
      count: ended,
    })
    return c.json(counted ? { ended } : { ended, counted })
  })

  return app
}

/** `&idp=`: required with several IdPs (a user is the pair idp, sub), else the one. */
function idpOf(s: BffServices, names: string[] | undefined): string {
  if (!names) {
    if (s.idps.list.length === 1) return s.idps.first.config.name
    throw new BffError(
      400,
      'invalid_request',
      'The "idp" query parameter is required: several IdPs are configured.'
    )
  }
  const idp = names.length === 1 ? s.idps.byName(names[0]!) : undefined
  if (!idp) {
    const known = s.idps.list.map((one) => one.config.name).join(', ')
    throw new BffError(400, 'unknown_idp', `idp must name one configured IdP: ${known}.`)
  }
  return idp.config.name
}

/** Only the IdP's own: a store hands sessions from before the IdP was recorded to any `idp`. */
function ofIdp(s: BffServices, idp: string, sessions: Session[]): Session[] {
  return sessions.filter((session) => s.idps.of(session)?.config.name === idp)
}

/** The subject's sessions, or null from a store that cannot list them (`not_supported`). */
async function listed(store: SessionStore, sub: string, idp: string): Promise<Session[] | null> {
  try {
    return await store.listBySub(sub, idp)
  } catch (err) {
    if (err instanceof BffError && err.code === 'not_supported') return null
    throw err
  }
}

function requiredSub(sub: string | undefined): string {
  if (!sub) throw new BffError(400, 'invalid_request', 'The "sub" query parameter is required.')
  return sub
}
