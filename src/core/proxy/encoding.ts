/**
 * Content codings at the proxy (RFC 9110 8.4, 12.5.3): which codings the upstream is asked for,
 * and whether its compressed answer can reach the browser as it came. A compressed answer that the
 * browser accepts passes untouched (same bytes, `Content-Encoding` and `Content-Length` kept): the
 * BFF neither spends CPU decoding it nor sends the browser ten times the bytes. The upstream is
 * asked only for codings the browser accepts, and only for those the transport can hand over.
 * Both transports use these rules: `forward` (forward.ts) and `nodeForward`
 * (src/adapters/node/upstream.ts).
 */

/** Codings a transport that does not decode hands over as they came: what browsers ask for. */
export const PASSABLE_CODINGS: ReadonlySet<string> = new Set(['gzip', 'br', 'zstd', 'deflate'])

/** Codings fetch decodes (Fetch standard: gzip, deflate and br; `x-gzip` is gzip). */
export const FETCH_DECODED_CODINGS: ReadonlySet<string> = new Set(['gzip', 'deflate', 'br'])

/** A browser's Accept-Encoding read once: coding -> q (1000ths), and `*`'s q if it named one. */
interface Acceptance {
  q: ReadonlyMap<string, number>
  /** q of `*`: codings the browser did not name; undefined when it has no `*`. */
  any: number | undefined
}

// The same few Accept-Encoding values come with every request (one per browser version): each is
// read once. Bounded, as the value is the client's to choose.
const MEMO_ENTRIES = 64
const acceptances = new Map<string, Acceptance>()
const upstreamValues = new Map<string, string>()

function acceptance(acceptEncoding: string): Acceptance {
  let found = acceptances.get(acceptEncoding)
  if (found) return found
  const q = new Map<string, number>()
  let any: number | undefined
  for (const part of acceptEncoding.split(',')) {
    const [rawName, ...params] = part.split(';')
    const name = canonical(rawName!.trim().toLowerCase())
    if (!name) continue
    let weight = 1000
    for (const param of params) {
      const match = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(param)
      // A malformed weight makes the coding unacceptable rather than preferred.
      weight = match ? Math.min(1000, Math.round(Number(match[1]) * 1000)) : 0
    }
    if (name === '*') any = weight
    // The first mention of a coding counts, as for repeated header lines joined with ", ".
    else if (!q.has(name)) q.set(name, weight)
  }
  found = { q, any }
  if (acceptances.size >= MEMO_ENTRIES) acceptances.clear()
  acceptances.set(acceptEncoding, found)
  return found
}

/** `x-gzip` is gzip (RFC 9110 8.4.1.3); every other name as it is. */
function canonical(coding: string): string {
  return coding === 'x-gzip' ? 'gzip' : coding
}

function accepts(acceptance: Acceptance, coding: string): boolean {
  const q = acceptance.q.get(coding) ?? acceptance.any
  return q !== undefined && q > 0
}

/**
 * The Accept-Encoding sent upstream for a browser's `acceptEncoding`: the codings it accepts that
 * `passable` holds, in its order, with its weights (`*` stands for the passable codings it did not
 * name). `identity` when none is left (a browser that sent none accepts none), so that no runtime
 * adds a default of its own (Node's fetch would ask for gzip).
 */
export function upstreamAcceptEncoding(
  acceptEncoding: string | null | undefined,
  passable: ReadonlySet<string> = PASSABLE_CODINGS
): string {
  if (!acceptEncoding) return 'identity'
  const key = passable === PASSABLE_CODINGS ? acceptEncoding : undefined
  const memo = key === undefined ? undefined : upstreamValues.get(key)
  if (memo !== undefined) return memo
  const { q, any } = acceptance(acceptEncoding)
  const asked: string[] = []
  const weighted = (coding: string, weight: number) =>
    weight >= 1000 ? coding : `${coding};q=${(weight / 1000).toString().slice(0, 5)}`
  for (const [coding, weight] of q) {
    if (weight > 0 && passable.has(coding)) asked.push(weighted(coding, weight))
  }
  if (any !== undefined && any > 0) {
    for (const coding of passable) if (!q.has(coding)) asked.push(weighted(coding, any))
  }
  const value = asked.length > 0 ? asked.join(', ') : 'identity'
  if (key !== undefined) {
    if (upstreamValues.size >= MEMO_ENTRIES) upstreamValues.clear()
    upstreamValues.set(key, value)
  }
  return value
}

/**
 * Whether a body in `contentEncoding` (one coding or several, in the order applied) can go to a
 * browser that sent `acceptEncoding` as it is: every coding in it is one the browser accepts.
 * A browser that sent no Accept-Encoding gets none (RFC 9110 would allow any, but clients that
 * send none, such as scripts and load generators, expect plain bodies).
 */
export function browserAccepts(
  acceptEncoding: string | null | undefined,
  contentEncoding: string
): boolean {
  if (!acceptEncoding) return false
  const acceptance_ = acceptance(acceptEncoding)
  for (const part of contentEncoding.split(',')) {
    const coding = canonical(part.trim().toLowerCase())
    if (coding === 'identity' || coding === '') continue
    if (!accepts(acceptance_, coding)) return false
  }
  return true
}

/**
 * `Vary` for an answer whose coding depends on the browser's Accept-Encoding: the upstream's, with
 * `Accept-Encoding` added unless it is there (or `*`), so a cache in front of the BFF never gives
 * one browser's gzip to another that does not read it.
 */
export function varyOnAcceptEncoding(vary: string | null | undefined): string {
  if (!vary?.trim()) return 'Accept-Encoding'
  if (/(^|,)\s*(accept-encoding|\*)\s*(,|$)/i.test(vary)) return vary
  return `${vary}, Accept-Encoding`
}
