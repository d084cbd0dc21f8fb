import { HTTPException } from 'hono/http-exception'
import type { ContentfulStatusCode } from 'hono/utils/http-status'

/** Stable error codes clients can switch on; the `error` field of every JSON error body. */
export type BffErrorCode =
  | 'unauthenticated'
  | 'session_expired'
  | 'csrf'
  | 'method_not_allowed'
  | 'forbidden'
  | 'insufficient_scope'
  | 'step_up_required'
  | 'invalid_return_to'
  | 'unknown_idp'
  | 'invalid_request'
  | 'payload_too_large'
  | 'headers_too_large'
  | 'invalid_callback'
  | 'login_failed'
  | 'step_up_failed'
  | 'step_up_required'
  | 'invalid_sid'
  | 'invalid_logout_token'
  | 'invalid_path'
  | 'not_found'
  | 'not_supported'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'idp_unavailable'
  | 'idp_timeout'
  | 'idp_error'
  | 'token_unavailable'
  | 'grant_not_supported'
  | 'store_unavailable'
  | 'policy_unavailable'
  | 'session_too_large'
  | 'websocket_not_allowed'
  | 'too_many_connections'
  | 'internal_error'

/**
 * The one error type routes throw. `message` is safe to show to the client; `cause` (never sent)
 * carries what the operator needs in the log.
 */
export class BffError extends HTTPException {
  constructor(
    status: ContentfulStatusCode,
    readonly code: BffErrorCode,
    message: string,
    options?: { cause?: unknown }
  ) {
    super(status, { message, cause: options?.cause })
    this.name = 'BffError'
  }
}
