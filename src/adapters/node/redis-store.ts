import type { Cluster, Redis } from 'ioredis'
import { ofIdp } from '../../core/session/idp-scope.ts'
import type { Session, SessionRef, SessionStore } from '../../core/session/types.ts'
import type { RedisSessionCache } from './redis-cache.ts'
import { cachedSessionReads } from './redis-session-reads.ts'
import { redisClusterStore } from './redis-cluster-store.ts'
import { redisSessionKey, redisSessionKeyPrefix, type RedisClient } from './redis-keys.ts'
import { bounded as withTimeout } from './redis-timeout.ts'

export { redisSessionKey, redisSessionKeyPrefix, type RedisClient }

export interface RedisStoreOptions {
  /**
   * Prepended to every key this store writes, so several apps can share one Redis.
   * @default 'bff:'
   * @example { prefix: 'shop-bff:' }
   */
  prefix?: string
  /**
   * The clock, in epoch milliseconds, that turns `session.expiresAt` into a TTL. Using the app's
   * clock for a relative TTL (`PX`) keeps a skewed Redis clock from cutting sessions short.
   * @default Date.now
   */
  now?: () => number
  /**
   * How long one store operation waits for Redis before it fails, in milliseconds; the request
   * then answers 503. ioredis has no command timeout unless the client sets one, so without this a
   * Redis that hangs (a frozen process, a partition without resets) would hold every request open.
   * @default 2000
   */
  operationTimeoutMs?: number
  /**
   * Sessions read recently, kept in this process while Redis reports every change to them (see
   * `redisSessionCache`): most calls then need no Redis round trip. Its `keyPrefix` must be
   * `redisSessionKeyPrefix(redis, prefix)`; another one is refused.
   */
  cache?: RedisSessionCache
}

/** `ping` gives up after this long: `/bff/health` must answer even when Redis hangs. */
const PING_TIMEOUT_MS = 1000

/*
 * Key layout on one node (P = client keyPrefix + `prefix`; a Cluster's is in
 * redis-cluster-store.ts):
 *   P session:<id>   string, the session as JSON, expiring with the session
 *   P sid:<sid>      set of session ids, expiring with its longest-lived member
 *   P sub:<sub>      set of session ids, likewise
 * Indexes are by the raw sid and sub, whatever the IdP: ending one IdP's sessions (`idp` given)
 * filters by the `idp` in each session's JSON.
 *
 * The scripts build the keys of other sessions from P (ARGV), as an index lookup cannot know them
 * in advance: this layout needs a single Redis node (or a primary with replicas, as Sentinel
 * manages); on a Cluster `redisStore` uses the other.
 */

// KEYS: session, sid index, sub index. ARGV: json, ttl ms, id, P, mode, generation.
// Writes the session and indexes it in one step, so deleteBySid/deleteBySub never miss a session
// that get can see. An overwrite that changes sid or sub leaves its old index sets; a new session
// prunes members of its indexes that have expired, so a returning user's sets do not grow forever.
// Mode 'update' writes only over a live session of the same or an older generation: a slow write
// can neither restore older tokens nor revive a session that was logged out. Returns 1 if written.
const SET_SESSION = `
local px = tonumber(ARGV[2])
local id, p = ARGV[3], ARGV[4]
local old = redis.call('GET', KEYS[1])
if ARGV[5] == 'update' then
  if not old then return 0 end
  local ok, prev = pcall(cjson.decode, old)
  if ok and type(prev) == 'table' and tonumber(prev.generation or 0) > tonumber(ARGV[6]) then
    return 0
  end
end
if old then
  local ok, prev = pcall(cjson.decode, old)
  if ok and type(prev) == 'table' then
    local oldSid, oldSub = p .. 'sid:' .. tostring(prev.sid), p .. 'sub:' .. tostring(prev.sub)
    if oldSid ~= KEYS[2] then redis.call('SREM', oldSid, id) end
    if oldSub ~= KEYS[3] then redis.call('SREM', oldSub, id) end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', px)
for i = 2, 3 do
  if not old then
    for _, member in ipairs(redis.call('SMEMBERS', KEYS[i])) do
      if redis.call('EXISTS', p .. 'session:' .. member) == 0 then
        redis.call('SREM', KEYS[i], member)
      end
    end
  end
  redis.call('SADD', KEYS[i], id)
  if redis.call('PTTL', KEYS[i]) < px then redis.call('PEXPIRE', KEYS[i], px) end
end
return 1
`

// KEYS: session, sid index, sub index (from the caller's copy). ARGV: id, P.
// Deletes the session and unindexes it under both the caller's and the stored sid and sub.
const DELETE_SESSION = `
local id, p = ARGV[1], ARGV[2]
local old = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], id)
redis.call('SREM', KEYS[3], id)
if old then
  local ok, prev = pcall(cjson.decode, old)
  if ok and type(prev) == 'table' then
    redis.call('SREM', p .. 'sid:' .. tostring(prev.sid), id)
    redis.call('SREM', p .. 'sub:' .. tostring(prev.sub), id)
  end
end
return old and 1 or 0
`

// KEYS: the index set. ARGV: P, field ('sid' or 'sub'), its value, the other field, and the idp
// when the caller gave one. Deletes the live sessions in the index (with an idp: that IdP's and
// those with no recorded idp) in one step, so a session written concurrently is either deleted or
// written after, never half-indexed. Another IdP's sessions stay, and stay indexed; every other
// member (deleted, gone, or since moved to another sid or sub) leaves the set, which Redis drops
// once empty. Returns how many it deleted.
const DELETE_BY_INDEX = `
local p, field, value, other, idp = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local count = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = p .. 'session:' .. id
  local raw = redis.call('GET', key)
  local keep = false
  if raw then
    local ok, s = pcall(cjson.decode, raw)
    if ok and type(s) == 'table' and tostring(s[field]) == value then
      if idp and type(s.idp) == 'string' and s.idp ~= idp then
        keep = true
      else
        redis.call('DEL', key)
        redis.call('SREM', p .. other .. ':' .. tostring(s[other]), id)
        count = count + 1
      end
    end
  end
  if not keep then redis.call('SREM', KEYS[1], id) end
end
return count
`

// defineCommand adds these to the caller's client (idempotently) and runs them by EVALSHA,
// falling back to EVAL after a SCRIPT FLUSH or a failover.
interface ScriptCommands {
  bffSessionSet(session: string, sid: string, sub: string, ...args: string[]): Promise<number>
  bffSessionDelete(session: string, sid: string, sub: string, ...args: string[]): Promise<number>
  bffSessionDeleteByIndex(index: string, ...args: string[]): Promise<number>
}

/**
 * Sessions in Redis, shared by every process: for deployments behind a load balancer.
 * Takes an ioredis client from outside so the caller owns connection options and its lifetime:
 * a `Redis` (one node, or a primary through Sentinel) or a `Cluster`, which gets the layout of
 * redis-cluster-store.ts. Keys expire with their sessions; per-sid and per-sub indexes let
 * back-channel logout find sessions without scanning, and Lua scripts keep each step atomic.
 */
export function redisStore(redis: RedisClient, options: RedisStoreOptions = {}): SessionStore {
  if (!redis || typeof redis.defineCommand !== 'function') {
    throw new TypeError('"redis" must be an ioredis client')
  }
  checkOptions(options)
  if (redis.isCluster) return redisClusterStore(redis as Cluster, options)
  return singleNodeStore(redis as Redis, options)
}

function checkOptions(options: RedisStoreOptions) {
  const { prefix = 'bff:', now = Date.now, operationTimeoutMs = 2000 } = options
  if (typeof prefix !== 'string') throw new TypeError('"prefix" must be a string')
  if (typeof now !== 'function') throw new TypeError('"now" must be a function')
  if (!Number.isFinite(operationTimeoutMs) || operationTimeoutMs <= 0) {
    throw new TypeError('"operationTimeoutMs" must be a positive number')
  }
}

function singleNodeStore(redis: Redis, options: RedisStoreOptions): SessionStore {
  const prefix = options.prefix ?? 'bff:'
  const now = options.now ?? Date.now
  const operationTimeoutMs = options.operationTimeoutMs ?? 2000

  redis.defineCommand('bffSessionSet', { numberOfKeys: 3, lua: SET_SESSION })
  redis.defineCommand('bffSessionDelete', { numberOfKeys: 3, lua: DELETE_SESSION })
  redis.defineCommand('bffSessionDeleteByIndex', { numberOfKeys: 1, lua: DELETE_BY_INDEX })
  const scripts = redis as unknown as ScriptCommands

  // ioredis prefixes KEYS with the client's keyPrefix but not keys a script builds itself.
  const scriptPrefix = (redis.options.keyPrefix ?? '') + prefix
  const sessionKey = (id: string) => redisSessionKey(prefix, id)
  const sidKey = (sid: string) => `${prefix}sid:${sid}`
  const subKey = (sub: string) => `${prefix}sub:${sub}`

  /** `operation`, or a rejection once Redis has not answered within `ms`. */
  const bounded = <T>(operation: Promise<T>, ms = operationTimeoutMs, what?: string) =>
    withTimeout(operation, ms, what)

  const cache = options.cache
  const cachePrefix = redisSessionKeyPrefix(redis, prefix)
  const cacheKey = (id: string) => cachePrefix + id
  // A cache tracking other keys would never hear of changes to these, and answer stale sessions.
  if (cache && cache.keyPrefix !== cachePrefix) {
    throw new TypeError(`"cache" must track the keys "${cachePrefix}", not "${cache.keyPrefix}"`)
  }

  const { read, evicting } = cachedSessionReads({
    cache,
    cacheKey,
    fetch: (id) => bounded(redis.get(sessionKey(id))),
    now,
  })

  async function deleteByIndex(field: 'sid' | 'sub', value: string, idp?: string) {
    const key = field === 'sid' ? sidKey(value) : subKey(value)
    const other = field === 'sid' ? 'sub' : 'sid'
    const args = [scriptPrefix, field, value, other, ...(idp === undefined ? [] : [idp])]
    // Which sessions go is known only inside the script: the whole cache is forgotten.
    return evicting(undefined, () => bounded(scripts.bffSessionDeleteByIndex(key, ...args)))
  }

  function write(session: Session, mode: 'create' | 'update'): Promise<boolean> {
    return evicting(session.id, () => writeThrough(session, mode))
  }

  async function writeThrough(session: Session, mode: 'create' | 'update'): Promise<boolean> {
    const ttl = Math.ceil(session.expiresAt * 1000 - now())
    const keys = [sessionKey(session.id), sidKey(session.sid), subKey(session.sub)] as const
    // PX must be positive; an already-expired session is removed rather than written.
    if (ttl <= 0) {
      await bounded(scripts.bffSessionDelete(...keys, session.id, scriptPrefix))
      return false
    }
    const written = await bounded(
      scripts.bffSessionSet(
        ...keys,
        JSON.stringify(session),
        String(ttl),
        session.id,
        scriptPrefix,
        mode,
        String(session.generation)
      )
    )
    return written === 1
  }

  return {
    kind: 'redis',

    async set(session) {
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
      const ids = await bounded(redis.smembers(subKey(sub)))
      const sessions = await Promise.all(ids.map((id) => read(id)))
      return sessions.filter((s): s is Session => s !== null && s.sub === sub && ofIdp(s, idp))
    },

    async delete(session) {
      const keys = [sessionKey(session.id), sidKey(session.sid), subKey(session.sub)] as const
      await evicting(session.id, () =>
        bounded(scripts.bffSessionDelete(...keys, session.id, scriptPrefix))
      )
    },

    deleteBySid: (sid, idp) => deleteByIndex('sid', sid, idp),

    deleteBySub: (sub, idp) => deleteByIndex('sub', sub, idp),

    async ping() {
      // A client with an offline queue or retries would wait for Redis to come back: race it.
      await bounded(redis.ping(), Math.min(PING_TIMEOUT_MS, operationTimeoutMs), 'PING')
    },
  }
}
