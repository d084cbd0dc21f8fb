/**
 * The session of a request with an access token fresh enough to use, for every route that needs
 * one (the API proxy, `/bff/user`): refreshed when due, the refreshed session stored, and the
 * session ended when the IdP refuses its refresh token. With `resource`, the same for the
 * session's token for that resource (RFC 8707; tokens/route-token.ts).
 */
import type { Context } from 'hono'
import { BffError } from '../errors.ts'
import { refreshReason } from '../observe/audit.ts'
import { errorReason, subjectHash } from '../observe/log.ts'
import { traceOf } from '../observe/spans.ts'
import type { BffEnv } from '../hono-env.ts'
import type { Session } from '../session/types.ts'
import type { BffServices } from '../services.ts'
import type { TokenResult } from '../tokens/token-manager.ts'
import { tellSessionEnd } from '../session/ends.ts'

/**
 * Throws 401 `session_expired` (the session destroyed) when the refresh token was refused, and
 * 401 `unauthenticated` when the session was logged out while its refresh was under way (the new
 * tokens then go nowhere). Any other failure comes back as the result's `error`, for the caller
 * to answer as it must.
 */
export async function freshSession(
  s: BffServices,
  c: Context<BffEnv>,
  session: Session,
  resource?: string
): Promise<TokenResult> {
  // The request's trace context: the refresh's span (with a tracer) and its grants are children.
  const trace = traceOf(c)
  const result =
    resource === undefined
      ? await s.tokens.freshSession(session, trace)
      : await s.tokens.freshResource(session, resource, trace)
  if (result.kind === 'error') {
    const { code, cause } = result.error
    // Without a refresh token, an expired access token ends the session with no grant asked for.
    const refreshable = Boolean(session.refreshToken)
    if (refreshable) {
      const reason = refreshReason(code, errorReason(cause))
      await s.audit(c, 'refresh_failed', { session, reason })
    }
    if (code === 'session_expired') {
      await s.sessions.destroy(c, session)
      s.log('info', 'session.expired', {
        idp: session.idp,
        sub: await subjectHash(session.sub),
        reason: errorReason(cause),
      })
      // A refusal comes with the IdP's answer as its cause; none means the session had ended.
      const reason = !refreshable ? 'access_token_expired' : cause ? 'refresh_refused' : 'ended'
      await s.audit(c, 'session_expired', { session, reason })
      // Ended here: every instance closes its live connections. One that had ended elsewhere was
      // told by whoever ended it.
      if (reason !== 'ended') {
        const why = reason === 'refresh_refused' ? 'refresh_failed' : 'session_expired'
        await tellSessionEnd(s, { reason: why, id: session.id })
      }
      throw result.error
    }
  }
  if (result.kind === 'refreshed') {
    s.log('info', 'token.refreshed', {
      idp: session.idp,
      sub: await subjectHash(session.sub),
      resource,
    })
    if (!(await s.sessions.update(c, result.session)) && !(await s.sessions.load(c))) {
      throw new BffError(401, 'unauthenticated', 'Not logged in.')
    }
  }
  return result
}
