/**
 * The `redis` store's layout for Redis Cluster (`redisStore` picks it for an ioredis `Cluster`).
 * A script may only touch keys of one hash slot, and the single-node layout's scripts build other
 * sessions' keys from the index sets: here every script stays in one slot and the steps that span
 * slots are ordered so that a session `get` can see is always indexed, and a back-channel or admin
 * logout never leaves one alive.
 *
 * Key layout (P = client keyPrefix + `prefix`; the part in braces is the hash tag):
 *   P{session:<id>}         string, the session as JSON, expiring with the session
 *   P{session:<id>}:ended   tombstone, 60 s: this id was logged out, a pending create is refused
 *   P{sid:<sid>}            sorted set of session ids, scored by when each session can end at the
 *   P{sub:<sub>}            latest (epoch ms); expiring with its longest-lived member
 * Sessions spread over the slots by id, indexes by sid and sub: no slot holds everything.
 *
 * Why it is correct (each numbered step is one command, atomic in its own slot):
 * - Writing (`set`, `update`): (1) add the id to its sid and sub indexes with the time the session
 *   can end at most, then (2) write the session, unless its tombstone exists. A session is only
 *   ever written after it is indexed under the sid and sub it carries, so `deleteBy*` can find
 *   every session `get` can see.
 * - `deleteBySid`/`deleteBySub`: (a) read the index, then per member (b) a script in that
 *   session's slot deletes it if it still carries this sid/sub (and idp) and writes its tombstone;
 *   a member whose session does not exist gets a tombstone too. Then (c) those members leave the
 *   index. A create racing with the logout either indexed its id after (a): it is a login after the
 *   logout, as on one node when its script runs after the logout's; or before (a): then (b) runs
 *   before or after its step (2). After: (b) deletes it. Before: the tombstone refuses step (2).
 *   Either way no session indexed before the logout survives it. A session that moved to another
 *   sid or sub, or belongs to another IdP, is left alone and stays indexed.
 * - An index member leaves only in (c) or once its score is over 60 s in the past: its session had
 *   to end by then. `delete` leaves the index alone (a racing write of the same id could lose its
 *   entry otherwise); the member goes with its score.
 * The 60 s (TOMBSTONE_MS, the pruning grace) assume a write reaches Redis within a minute of its
 * index step: each step gives up after `operationTimeoutMs` (2 s), and ioredis's retries on
 * redirections and failovers are bounded far below that.
 */
import type { Cluster } from 'ioredis'
import { ofIdp } from '../../core/session/idp-scope.ts'
import type { Session, SessionRef, SessionStore } from '../../core/session/types.ts'
import { redisSessionKey, redisSessionKeyPrefix } from './redis-keys.ts'
import type { RedisStoreOptions } from './redis-store.ts'
import { bounded } from './redis-timeout.ts'
import { cachedSessionReads } from './redis-session-reads.ts'

/** How long a logged-out id refuses a create, and how long past its end an index entry stays. */
export const TOMBSTONE_MS = 60_000
const PING_TIMEOUT_MS = 1000

// KEYS: an index. ARGV: id, until (epoch ms, when the session can end at the latest), now, grace.
// Drops the members that ended over `grace` ago, adds this one (an existing member's time only
// grows: ZADD GT), and keeps the set until its last member's end plus the grace.
const INDEX_ADD = `
local now, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - grace))
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local keep = tonumber(ARGV[2]) - now + grace
if redis.call('PTTL', KEYS[1]) < keep then redis.call('PEXPIRE', KEYS[1], keep) end
return 1
`

// KEYS: session, its tombstone. ARGV: json, ttl ms, mode, generation.
// Mode 'update' writes only over a live session of the same or an older generation: a slow write
// can neither restore older tokens nor revive a session that was logged out. No mode writes over
// a tombstone. Returns 1 if written.
const WRITE_SESSION = `
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if ARGV[3] == 'update' then
  local old = redis.call('GET', KEYS[1])
  if not old then return 0 end
  local ok, prev = pcall(cjson.decode, old)
  if ok and type(prev) == 'table' and tonumber(prev.generation or 0) > tonumber(ARGV[4]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`

// KEYS: session, its tombstone. ARGV: field ('sid' or 'sub'), its value, tombstone ms, idp or ''.
// Returns 1: deleted; 2: no such session (a tombstone refuses its pending create); 0: left alone
// (it carries another sid or sub now, or belongs to another IdP).
const DELETE_MEMBER = `
local raw = redis.call('GET', KEYS[1])
if not raw then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  return 2
end
local ok, s = pcall(cjson.decode, raw)
if not ok or type(s) ~= 'table' or tostring(s[ARGV[1]]) ~= ARGV[2] then return 0 end
if ARGV[4] ~= '' and type(s.idp) == 'string' and s.idp ~= ARGV[4] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
return 1
`

interface ClusterScripts {
  bffIndexAdd(index: string, ...args: string[]): Promise<number>
  bffClusterWrite(session: string, tombstone: string, ...args: string[]): Promise<number>
  bffClusterDeleteMember(session: string, tombstone: string, ...args: string[]): Promise<number>
}

export function redisClusterStore(redis: Cluster, options: RedisStoreOptions = {}): SessionStore {
  const prefix = options.prefix ?? 'bff:'
  const now = options.now ?? Date.now
  const operationTimeoutMs = options.operationTimeoutMs ?? 2000
  // A brace in the prefix would become (part of) every key's hash tag.
  const fullPrefix = (redis.options.keyPrefix ?? '') + prefix
  if (/[{}]/.test(fullPrefix)) {
    throw new TypeError(
      '"prefix" (and the client\'s keyPrefix) must not hold "{" or "}" on a Cluster'
    )
  }
  const cache = options.cache
  const cachePrefix = redisSessionKeyPrefix(redis, prefix)
  // A cache tracking other keys would never hear of changes to these, and answer stale sessions.
  if (cache && cache.keyPrefix !== cachePrefix) {
    throw new TypeError(`"cache" must track the keys "${cachePrefix}", not "${cache.keyPrefix}"`)
  }

  redis.defineCommand('bffIndexAdd', { numberOfKeys: 1, lua: INDEX_ADD })
  redis.defineCommand('bffClusterWrite', { numberOfKeys: 2, lua: WRITE_SESSION })
  redis.defineCommand('bffClusterDeleteMember', { numberOfKeys: 2, lua: DELETE_MEMBER })
  const scripts = redis as unknown as ClusterScripts

  const sessionKey = (id: string) => redisSessionKey(prefix, id, true)
  const tombstoneKey = (id: string) => `${sessionKey(id)}:ended`
  const indexKey = (field: 'sid' | 'sub', value: string) => `${prefix}{${field}:${value}}`
  const timed = <T>(operation: Promise<T>) => bounded(operation, operationTimeoutMs)

  // The key as Redis reports it to the cache: with the client's keyPrefix.
  const cacheKey = (id: string) => (redis.options.keyPrefix ?? '') + sessionKey(id)

  const { read, evicting } = cachedSessionReads({
    cache,
    cacheKey,
    fetch: (id) => timed(redis.get(sessionKey(id))),
    now,
  })

  function write(session: Session, mode: 'create' | 'update'): Promise<boolean> {
    return evicting(session.id, () => writeThrough(session, mode))
  }

  async function writeThrough(session: Session, mode: 'create' | 'update'): Promise<boolean> {
    const until = session.expiresAt * 1000
    const ttl = Math.ceil(until - now())
    // PX must be positive; an already-expired session is removed rather than written.
    if (ttl <= 0) {
      await timed(redis.del(sessionKey(session.id)))
      return false
    }
    // First indexed, then written: see the top of this file.
    const at = String(now())
    await Promise.all(
      (['sid', 'sub'] as const).map((field) =>
        timed(
          scripts.bffIndexAdd(
            indexKey(field, session[field]),
            session.id,
            String(until),
            at,
            String(TOMBSTONE_MS)
          )
        )
      )
    )
    const written = await timed(
      scripts.bffClusterWrite(
        sessionKey(session.id),
        tombstoneKey(session.id),
        JSON.stringify(session),
        String(ttl),
        mode,
        String(session.generation)
      )
    )
    return written === 1
  }

  function deleteByIndex(field: 'sid' | 'sub', value: string, idp?: string) {
    // Which sessions go is known only once each member's script ran: the whole cache is forgotten.
    return evicting(undefined, () => deleteIndexed(field, value, idp))
  }

  async function deleteIndexed(field: 'sid' | 'sub', value: string, idp?: string) {
    const index = indexKey(field, value)
    const ids = await timed(redis.zrange(index, 0, -1))
    const outcomes = await Promise.all(
      ids.map((id) =>
        timed(
          scripts.bffClusterDeleteMember(
            sessionKey(id),
            tombstoneKey(id),
            field,
            value,
            String(TOMBSTONE_MS),
            idp ?? ''
          )
        )
      )
    )
    const gone = ids.filter((_, i) => outcomes[i] !== 0)
    if (gone.length > 0) await timed(redis.zrem(index, ...gone))
    return outcomes.filter((outcome) => outcome === 1).length
  }

  return {
    kind: 'redis',

    async set(session) {
      // A create refused by a tombstone was logged out while it was made: its ref leads nowhere,
      // as it would had the logout come a moment later.
      await write(session, 'create')
      return { id: session.id }
    },

    async update(session) {
      return (await write(session, 'update')) ? { id: session.id } : null
    },

    async get(ref: SessionRef) {
      if (!('id' in ref) || typeof ref.id !== 'string') return null
      return read(ref.id)
    },

    async listBySub(sub, idp) {
      const ids = await timed(redis.zrange(indexKey('sub', sub), 0, -1))
      const sessions = await Promise.all(ids.map((id) => read(id)))
      return sessions.filter((s): s is Session => s !== null && s.sub === sub && ofIdp(s, idp))
    },

    async delete(session) {
      await evicting(session.id, () => timed(redis.del(sessionKey(session.id))))
    },

    deleteBySid: (sid, idp) => deleteByIndex('sid', sid, idp),

    deleteBySub: (sub, idp) => deleteByIndex('sub', sub, idp),

    async ping() {
      await bounded(redis.ping(), Math.min(PING_TIMEOUT_MS, operationTimeoutMs), 'PING')
    },
  }
}
