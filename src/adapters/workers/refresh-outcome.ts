/**
 * A token refresh run inside a session's object answers the caller across the RPC boundary, where
 * only plain data passes: the error is turned into data there (`failure`) and back here (`unwrap`).
 */
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { BffError, type BffErrorCode } from '../../core/errors.ts'
import { errorReason } from '../../core/observe/log.ts'
import type { Session } from '../../core/session/types.ts'

/** What a refresh inside the object answers: errors cross the RPC boundary as plain data. */
export type RefreshOutcome =
  | { ok: true; session: Session }
  | {
      ok: false
      status: ContentfulStatusCode
      code: BffErrorCode
      message: string
      /** The cause's class and code, for the caller's log (`errorReason`); none without a cause. */
      reason?: string
    }

export function unwrap(outcome: RefreshOutcome): Session {
  if (outcome.ok) return outcome.session
  // The cause stayed in the object; its name carries the reason into the caller's log.
  const cause = outcome.reason && Object.assign(new Error(outcome.reason), { name: outcome.reason })
  throw new BffError(outcome.status, outcome.code, outcome.message, { cause })
}

export function failure(error: BffError): RefreshOutcome {
  const status = error.status as ContentfulStatusCode
  return {
    ok: false,
    status,
    code: error.code,
    message: error.message,
    reason: errorReason(error.cause),
  }
}
