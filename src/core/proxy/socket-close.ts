/**
 * Close codes of a relayed WebSocket pair (the browser's and the upstream's), one rule for every
 * runtime: when one side closes, the other is closed the same way, as far as the protocol lets an
 * endpoint say it. RFC 6455 7.4.1 reserves codes that describe a close but may never be sent in a
 * close frame: 1005 (no code was given) and 1006 (the connection broke without a close frame).
 */

/** RFC 6455 7.4.1: an endpoint going away (the server shutting down). */
export const GOING_AWAY_CLOSE = 1001
/** RFC 6455 7.4.1: a message too large to take. */
export const TOO_BIG_CLOSE = 1009
/** RFC 6455 7.4.1: the server met a condition it cannot go on with (here: its partner broke). */
export const INTERNAL_CLOSE = 1011

/** Codes an endpoint may send in a close frame (RFC 6455 7.4; the `ws` package's rule). */
export function isSendableCloseCode(code: number): boolean {
  return (
    (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
  )
}

/**
 * How to close a socket whose partner closed with `code` and `reason`:
 * - `{ code, reason }`: the same code and reason;
 * - `{}`: a close frame without a code, as the partner sent none (1005), so the far end sees 1005;
 * - `'broken'`: the partner's connection broke (1006) or it named a code no endpoint may send. A
 *   runtime that can cut a connection does, so the far end sees a broken connection too (Node);
 *   one that cannot (Workers) closes with `brokenClose`.
 */
export function partnerClose(
  code: number,
  reason: string
): { code: number; reason: string } | { code?: undefined } | 'broken' {
  if (code === 1005) return {}
  if (!isSendableCloseCode(code)) return 'broken'
  return { code, reason }
}

/** The close sent in place of a broken partner by a runtime that cannot cut a connection. */
export const brokenClose = { code: INTERNAL_CLOSE, reason: 'connection_lost' } as const
