/**
 * What a presented session cookie was last sealed again into. Once a session is older than its
 * touch interval, every request that still carries the previous cookie would slide the session
 * and seal a new cookie: an API client that ignores `Set-Cookie`, or requests already in flight
 * when the cookie changed. A seal costs two key derivations, an HMAC and an encryption, and in
 * cookie mode the answer carries ~2 KB of `Set-Cookie`. Remembered here, the same presented
 * cookie is answered with the same new cookie: one seal, however many requests carry it, also
 * when they come at once (the first to write seals, the others wait for that seal). Once an
 * answer has carried it, later requests with the old cookie get no Set-Cookie at all until the
 * session is due to slide again: the old cookie still works meanwhile (its own expiry is an idle
 * timeout away), and a browser that missed the new one gets the next.
 *
 * Only the seal is saved, never a check: the session manager still writes the session to its
 * store (revocations, the newest generation across instances) and asks for the newest generation
 * this instance knows before it hands a remembered cookie out again.
 */
import { copyValue } from './copy.ts'
import type { Session } from './types.ts'
import { oldestFirst } from '../oldest-first.ts'

/** One presented cookie's re-seal: the session it slid to, and its seal once made. */
export interface Reseal {
  /** The session the new cookie carries (the slid expiry, the generation it was sealed at). */
  readonly session: Session
  /** The new cookie's value, as written; set by the first request that writes it. */
  sealed?: Promise<string>
  /** Some answer has carried the new cookie. */
  sent?: boolean
}

export interface ResealCache {
  /**
   * The re-seal of `presented` (a cookie that has just opened: genuine), if it still serves a
   * request that would now write `session` (the newest generation known) slid to `slid` (epoch
   * seconds): the same session and generation, and an expiry not behind the session's and less
   * than `touchEverySeconds` behind `slid`. `session` is the caller's own copy of its session.
   */
  find(
    presented: string,
    session: Session,
    slid: number,
    touchEverySeconds: number
  ): { reseal: Reseal; session: Session } | undefined
  /** Starts the re-seal of `presented` into `session` (not sealed yet), replacing any before. */
  start(presented: string, session: Session): Reseal
}

/** How much of the sealed text keys the map: its tail holds the seal's HMAC, as random as text gets. */
const KEY_CHARS = 64

export interface ResealCacheOptions {
  /** @default 10_000 */
  maxEntries?: number
  /**
   * Approximate bound on memory, counting each entry as three times its presented cookie (the
   * new cookie is about as long, and the session it holds).
   * @default 8 MiB
   */
  maxBytes?: number
}

export function resealCache(options: ResealCacheOptions = {}): ResealCache {
  const maxEntries = options.maxEntries ?? 10_000
  const maxBytes = options.maxBytes ?? 8 * 1024 * 1024
  // Map order is recency order: a hit moves its entry to the end, eviction takes the front.
  // Keyed by the presented seal's tail, its HMAC: `find` is only asked about a cookie that has
  // just opened (so is genuine), and no other genuine seal has that HMAC.
  const entries = new Map<string, { reseal: Reseal; bytes: number }>()
  const oldestEntry = oldestFirst(entries)
  let bytes = 0
  const keyOf = (sealed: string) => (sealed.length > KEY_CHARS ? sealed.slice(-KEY_CHARS) : sealed)

  function forget(key: string) {
    const entry = entries.get(key)
    if (!entry) return
    entries.delete(key)
    bytes -= entry.bytes
  }

  return {
    find(presented, session, slid, touchEverySeconds) {
      const key = keyOf(presented)
      const entry = entries.get(key)
      if (!entry) return undefined
      const known = entry.reseal.session
      const fits =
        known.id === session.id &&
        known.generation === session.generation &&
        // Never an expiry behind the one the request's session has (a server store's may have
        // slid meanwhile), nor one due for sliding again.
        known.expiresAt >= session.expiresAt &&
        slid - known.expiresAt < touchEverySeconds
      if (!fits) return undefined
      entries.delete(key)
      entries.set(key, entry)
      return { reseal: entry.reseal, session: copyValue(known) }
    },
    start(presented, session) {
      // The caller's session may change after this; the entry keeps its own copy.
      const reseal: Reseal = { session: copyValue(session) }
      const size = presented.length * 3
      if (maxEntries === 0 || size > maxBytes) return reseal
      const key = keyOf(presented)
      forget(key)
      while (entries.size >= maxEntries || bytes + size > maxBytes) {
        forget(oldestEntry()![0])
      }
      entries.set(key, { reseal, bytes: size })
      bytes += size
      return reseal
    },
  }
}
