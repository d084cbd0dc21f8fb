import { copyValue, copyWithStringsOf } from '../copy.ts'
import { ofIdp } from '../idp-scope.ts'
import type { Session, SessionRef, SessionStore } from '../types.ts'
import { oldestFirst } from '../../oldest-first.ts'

export interface MemoryStoreOptions {
  /**
   * The clock, in epoch milliseconds. Tests inject one to expire sessions without waiting.
   * @default Date.now
   * @example { now: () => fakeTime }
   */
  now?: () => number
  /**
   * How many sessions the store holds at most. Past it, the session written least recently is
   * evicted (its user logs in again), so a flood of logins cannot exhaust the process's memory.
   * @default 100_000
   * @example { maxSessions: 10_000 }
   */
  maxSessions?: number
  /**
   * How many sessions one user (a `sub` at one IdP) holds at most. Past it, that user's own
   * session written least recently goes, so one account logging in in a loop (silent logins
   * against a live IdP session) cannot push everyone else out of the store.
   * @default 50
   * @example { maxSessionsPerUser: 10 }
   */
  maxSessionsPerUser?: number
}

export const DEFAULT_MAX_SESSIONS_PER_USER = 50

/** Below this many writes a full sweep is not worth its scan; tiny stores still get swept. */
const MIN_WRITES_BETWEEN_SWEEPS = 64

/**
 * Sessions in this isolate's memory: for development, tests and single-process deployments.
 * Everything is lost on restart and nothing is shared between processes or Workers isolates.
 *
 * Uses Web APIs only (`structuredClone`, `Map`), so it runs on Node and Workers alike, and sets no
 * timers: expired sessions are dropped when read and by sweeps that writes pay for.
 *
 * Eviction, once `maxSessions` is reached: first a sweep of expired sessions, then the session
 * written least recently. A `Map` keeps insertion order and an overwrite re-inserts, so this is
 * O(1) with no heap; since every token refresh rewrites its session, the victim is the session
 * idle the longest, which is the cheapest one to lose. Evicting by earliest `expiresAt` would
 * need a priority queue and would favour idle sessions with long lifetimes over active ones.
 */
export function memoryStore(options: MemoryStoreOptions = {}): SessionStore {
  const now = options.now ?? Date.now
  const maxSessions = options.maxSessions ?? 100_000
  if (typeof now !== 'function') throw new TypeError('"now" must be a function')
  if (!Number.isSafeInteger(maxSessions) || maxSessions < 1) {
    throw new TypeError('"maxSessions" must be a positive integer')
  }
  const maxPerUser = options.maxSessionsPerUser ?? DEFAULT_MAX_SESSIONS_PER_USER
  if (!Number.isSafeInteger(maxPerUser) || maxPerUser < 1) {
    throw new TypeError('"maxSessionsPerUser" must be a positive integer')
  }

  // Insertion order = write order: the first key is the eviction candidate.
  const sessions = new Map<string, Session>()
  const oldestSession = oldestFirst(sessions)
  const bySid = new Map<string, Set<string>>()
  const bySub = new Map<string, Set<string>>()
  let writesSinceSweep = 0

  const isExpired = (session: Session, at: number) => session.expiresAt * 1000 <= at

  function index(map: Map<string, Set<string>>, key: string, id: string) {
    const ids = map.get(key)
    if (ids) ids.add(id)
    else map.set(key, new Set([id]))
  }

  function unindex(map: Map<string, Set<string>>, key: string, id: string) {
    const ids = map.get(key)
    if (!ids) return
    ids.delete(id)
    if (ids.size === 0) map.delete(key)
  }

  function remove(id: string) {
    const stored = sessions.get(id)
    if (!stored) return
    sessions.delete(id)
    unindex(bySid, stored.sid, id)
    unindex(bySub, stored.sub, id)
  }

  function sweep(at: number) {
    writesSinceSweep = 0
    for (const [id, stored] of sessions) if (isExpired(stored, at)) remove(id)
  }

  // A full scan costs O(size); spacing sweeps by a quarter of the size in writes keeps the cost
  // per write constant. When full, sweeps come sooner, as each one may spare a live session.
  function sweepIfDue(at: number) {
    const full = sessions.size >= maxSessions
    const due = full ? sessions.size >> 4 : Math.max(MIN_WRITES_BETWEEN_SWEEPS, sessions.size >> 2)
    if (writesSinceSweep >= due) sweep(at)
  }

  /** Ends the sessions under `key` (of `idp` only, when given); another IdP's stay indexed. */
  function deleteByIndex(map: Map<string, Set<string>>, key: string, idp?: string): number {
    const ids = map.get(key)
    if (!ids) return 0
    const at = now()
    let count = 0
    // Copy: remove() edits the set being iterated.
    for (const id of [...ids]) {
      const stored = sessions.get(id)
      const live = stored !== undefined && !isExpired(stored, at)
      if (live && !ofIdp(stored, idp)) continue
      if (live) count++
      remove(id)
    }
    return count
  }

  /**
   * Evicts the least recently written sessions of this user (this `sub` at this IdP) until one more
   * fits. The index is by raw `sub`: the same `sub` at another IdP is another user, whose sessions
   * neither count here nor go.
   */
  function makeRoomForUser(session: Session) {
    const own = bySub.get(session.sub)
    if (!own || own.size < maxPerUser) return
    // A set keeps insertion order and a rewrite re-inserts: the first ids are the oldest writes.
    const mine = [...own].filter((id) => sessions.get(id)?.idp === session.idp)
    for (let i = 0; i <= mine.length - maxPerUser; i++) remove(mine[i]!)
  }

  const store: SessionStore = {
    kind: 'memory',

    async set(session) {
      const at = now()
      const previous = sessions.get(session.id)
      // A copy that shares no string of the caller's, so a stored session never keeps alive a
      // larger text its strings were sliced from (a token response, say): structuredClone, or
      // for a rewrite whose strings are all the stored ones (a slide), those, not copied again.
      const copy = (previous && copyWithStringsOf(session, previous)) ?? structuredClone(session)
      // An already-expired session is not worth a slot; the ref still answers null.
      if (isExpired(copy, at)) {
        remove(copy.id)
        return { id: copy.id }
      }
      // The same sid and sub keep their index entries (removing and adding them again is two
      // Sets and four operations on maps as large as the store, on every slide); the id only
      // moves to the end of its user's, whose order is that of the writes (makeRoomForUser).
      const own = bySub.get(copy.sub)
      const indexed =
        previous !== undefined && previous.sid === copy.sid && previous.sub === copy.sub && own
      if (indexed) {
        sessions.delete(copy.id)
        own.delete(copy.id)
        own.add(copy.id)
      } else remove(copy.id)
      writesSinceSweep++
      sweepIfDue(at)
      // The user's own sessions first.
      makeRoomForUser(copy)
      while (sessions.size >= maxSessions) {
        const oldest = oldestSession()
        if (!oldest) break
        remove(oldest[0])
      }
      sessions.set(copy.id, copy)
      if (!indexed) {
        index(bySid, copy.sid, copy.id)
        index(bySub, copy.sub, copy.id)
      }
      return { id: copy.id }
    },

    async update(session) {
      // Only over a live session of the same or an older generation: never backwards, never revived.
      const stored = sessions.get(session.id)
      if (!stored || isExpired(stored, now()) || stored.generation > session.generation) return null
      return store.set(session)
    },

    async get(ref: SessionRef) {
      if (!('id' in ref) || typeof ref.id !== 'string') return null
      const stored = sessions.get(ref.id)
      if (!stored) return null
      if (isExpired(stored, now())) {
        remove(ref.id)
        return null
      }
      // A copy, so a caller editing its session changes nothing until it calls set. It shares
      // the stored strings, which nobody can change.
      return copyValue(stored)
    },

    async delete(session) {
      remove(session.id)
    },

    async deleteBySid(sid, idp) {
      return deleteByIndex(bySid, sid, idp)
    },

    async deleteBySub(sub, idp) {
      return deleteByIndex(bySub, sub, idp)
    },

    async listBySub(sub, idp) {
      const at = now()
      const ids = [...(bySub.get(sub) ?? [])]
      return ids
        .map((id) => sessions.get(id))
        .filter((s): s is Session => s !== undefined && !isExpired(s, at) && ofIdp(s, idp))
        .map((s) => copyValue(s))
    },

    async ping() {},
  }
  return store
}
