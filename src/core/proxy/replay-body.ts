/**
 * Whether a request with a DPoP proof can be sent to its upstream a second time, answering the
 * upstream's `use_dpop_nonce` challenge (RFC 9449 9): only when its body can be sent again, so
 * either it has none or it is small and of a declared length, and then read in full first (the
 * `body` the forwarder sends instead of the stream). A body streamed on as it comes (chunked, of
 * unknown length, or larger than `MAX_REPLAY_BODY_BYTES`) is gone once sent: such a request is
 * not sent again, and its 401 goes back to the app.
 */
import type { Context } from 'hono'
import { BffError } from '../errors.ts'
import type { Forwarder } from './forward.ts'

/** A body up to this size, of a declared length, is read first so the request can be sent again. */
export const MAX_REPLAY_BODY_BYTES = 64 * 1024

/**
 * `{}` for a request without a body (GET, HEAD), `{ body }` with the body read in full, or
 * undefined when it cannot be sent again.
 */
export async function replayableRequest(
  c: Context,
  forwarder: Pick<Forwarder, 'hasBody'>
): Promise<{ body?: Uint8Array } | undefined> {
  const method = c.req.method
  if (method === 'GET' || method === 'HEAD') return {}
  // A chunked body's size is not known until it has all come: it streams on, and goes once.
  if (c.req.header('transfer-encoding') !== undefined) return undefined
  const declared = c.req.header('content-length')
  if (declared === undefined) {
    // Neither header: no body in HTTP/1.1 (RFC 9112 6.3), as fetch sends a DELETE without one;
    // in HTTP/2 a body of unknown length may still come, which the runtime's Request shows.
    const some = forwarder.hasBody ? forwarder.hasBody(c) : c.req.raw.body !== null
    return some ? undefined : { body: new Uint8Array(0) }
  }
  if (!/^\d{1,10}$/.test(declared)) return undefined
  const length = Number(declared)
  if (length > MAX_REPLAY_BODY_BYTES) return undefined
  if (length === 0) return { body: new Uint8Array(0) }
  try {
    // What arrived is what is sent, both times; the server holds it to the declared length.
    return { body: new Uint8Array(await c.req.arrayBuffer()) }
  } catch (err) {
    // The client went away or broke off mid-body: nothing to send.
    throw new BffError(400, 'invalid_request', 'The request body could not be read.', {
      cause: err,
    })
  }
}
