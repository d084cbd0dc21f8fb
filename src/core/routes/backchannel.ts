/**
 * `POST /bff/backchannel` (the single IdP of the settings) or `/bff/backchannel/<name>` (each IdP
 * of `idps`): OpenID Connect Back-Channel Logout 1.0. The IdP posts a signed logout
 * token; every session of that IdP it names (by `sid`, else all of the `sub`'s) ends in every
 * store. Anything
 * invalid answers 400 and changes nothing.
 */
import { Hono, type Context } from 'hono'
import { BffError } from '../errors.ts'
import { subjectHash } from '../observe/log.ts'
import type { Idp } from '../oidc/idps.ts'
import { LOGOUT_TOKEN_MAX_AGE_SECONDS } from '../oidc/logout-token.ts'
import { refuseCrossSiteWrite } from '../policy/csrf.ts'
import type { BffServices } from '../services.ts'
import { tellSessionEnd } from '../session/ends.ts'

const MAX_BODY_BYTES = 64 * 1024

export function backchannelRoute(s: BffServices) {
  const app = new Hono()
  // Each IdP at its own address, its tokens checked against its own issuer, audience and keys: a
  // token of one IdP posted to another's address is refused, and ends only that IdP's sessions.
  for (const idp of s.idps.list) {
    app.post(idp.config.backchannelPath, (c) => backchannel(c, idp))
  }
  return app

  async function backchannel(c: Context, idp: Idp) {
    c.header('Cache-Control', 'no-store')
    // The IdP calls server to server; a browser has no business here.
    await refuseCrossSiteWrite(c, s.audit, idp.config.backchannelPath)
    const type = c.req.header('content-type') ?? ''
    if (!type.startsWith('application/x-www-form-urlencoded')) {
      throw badRequest('The logout token must be posted as application/x-www-form-urlencoded.')
    }
    // Anyone can post here: the body is read only when its announced length is within the limit
    // (the HTTP parser holds the body to that length). An IdP posts a small form with a length;
    // a body without one is refused rather than read to an unknown end.
    const length = c.req.header('content-length')
    if (length === undefined || !/^\d+$/.test(length)) {
      throw new BffError(411, 'invalid_request', 'The request needs a Content-Length.')
    }
    if (Number(length) > MAX_BODY_BYTES) {
      throw new BffError(413, 'payload_too_large', 'The request body is too large.')
    }
    const body = await c.req.text()
    if (body.length > MAX_BODY_BYTES) throw badRequest('The request body is too large.')
    const token = new URLSearchParams(body).get('logout_token')
    if (!token) throw badRequest('logout_token is missing.')

    const claims = await idp.oidc.validateLogoutToken(token)
    const name = idp.config.name
    // jti is unique per issuer only; the first IdP's keys stay as they were.
    const replayKey =
      idp === s.idps.first ? `logout-jti:${claims.jti}` : `logout-jti:${name}:${claims.jti}`
    // Remembered past the token's maximum age, after which the iat check refuses it anyway.
    if (!(await s.replay.claim(replayKey, LOGOUT_TOKEN_MAX_AGE_SECONDS + 60))) {
      throw new BffError(400, 'invalid_logout_token', 'The logout token was already used.')
    }
    let ended: number
    try {
      ended = claims.sid
        ? await s.sessions.store.deleteBySid(claims.sid, name)
        : await s.sessions.store.deleteBySub(claims.sub!, name)
    } catch (err) {
      // The IdP retries a failed delivery: the same token must then be accepted.
      await s.replay.release(replayKey).catch(() => {})
      throw new BffError(503, 'store_unavailable', 'The session store is unavailable.', {
        cause: err,
      })
    }
    // Counted or not (the cookie store cannot), every instance closes their live connections.
    await tellSessionEnd(
      s,
      claims.sid
        ? { reason: 'backchannel_logout', sid: claims.sid, idp: name }
        : { reason: 'backchannel_logout', sub: claims.sub!, idp: name }
    )
    s.metrics.logout('backchannel')
    s.log('info', 'logout.backchannel', {
      idp: name,
      by: claims.sid ? 'sid' : 'sub',
      sub: claims.sub ? await subjectHash(claims.sub) : undefined,
      sessions: ended,
    })
    await s.audit(c, 'backchannel_logout', {
      sub: claims.sub,
      idp: name,
      route: idp.config.backchannelPath,
      reason: claims.sid ? 'sid' : 'sub',
      count: ended,
    })
    return c.body(null, 200)
  }
}

function badRequest(message: string) {
  return new BffError(400, 'invalid_request', message)
}
