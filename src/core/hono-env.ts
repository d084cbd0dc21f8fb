/**
 * The Hono env of the BFF's app: the context variables its middleware and routes share for one
 * request. Exported from the package (`BffEnv`) so a host app mounting `createBff` can type its
 * own app or middleware with it.
 */
import type { PendingCookie } from './session/manager.ts'
import type { TraceContext } from './observe/trace.ts'
import type { Session, SessionRef } from './session/types.ts'

/** Hono context variables the BFF sets; mount points may type their app with it. */
export type BffEnv = {
  Variables: {
    session: Session | null | undefined
    /** What the request's session cookie carried, once loaded. */
    sessionRef: SessionRef | null | undefined
    sessionCookie: PendingCookie | undefined
    /** The request's cookie held a session that has expired (session/manager.ts `load`). */
    sessionExpired: boolean | undefined
    /** This response sets or clears the session cookie. */
    sessionCookieWritten: boolean | undefined
    /** The API proxy answered this request (with the upstream's answer or an error). */
    proxied: boolean | undefined
    /** The trace context this request's own calls are children of (observe/spans.ts `traceOf`). */
    trace: TraceContext | undefined
  }
}
