import { sealData, unsealData } from 'iron-session'
import { oldestFirst } from '../oldest-first.ts'

/**
 * iron-session's seal format (`Fe26.2*…~2`), made and opened: by default through iron-session
 * (WebCrypto, every runtime); a runtime may bring a faster implementation of the very same format
 * (Node: src/adapters/node/crypto.ts). Both must read what the other writes.
 */
export interface Iron {
  /** Seals `data` as iron-session's `sealData` with the single password `{ [id]: secret }`. */
  seal(data: object, password: { id: string; secret: string }, ttlSeconds: number): Promise<string>
  /**
   * Opens `sealed` as iron-session's `unsealData` with `passwords` (id -> secret) and ttl 0: the
   * data, or throws (or answers null) when it is malformed, forged, expired or of an unknown id.
   */
  unseal(sealed: string, passwords: Record<string, string>): Promise<unknown>
  /**
   * Does ahead what each secret needs before its first seal or unseal (e.g. importing it as a
   * key), so that it happens when the sealer is made (on Workers: at isolate start-up) rather
   * than on some session's first request. Optional; pure set-up only: no I/O, no random values.
   * What it returns settles once that is done (and never rejects); no caller needs to wait.
   */
  prepare?(secrets: readonly string[]): void | Promise<void>
}

/** iron-session itself: WebCrypto, on every runtime. */
export const ironSession: Iron = {
  seal: (data, { id, secret }, ttl) => sealData(data, { password: { [id]: secret }, ttl }),
  unseal: (sealed, passwords) => unsealData(sealed, { password: passwords, ttl: 0 }),
}

/**
 * Encrypts and authenticates small JSON values for cookies (iron: AES-256-CBC + HMAC-SHA256).
 * With several secrets the first seals and all unseal, so a secret can be rotated without
 * logging anybody out.
 */
export interface Sealer {
  /**
   * Seals `data` for `ttlSeconds`. With `graceSeconds`, the seal still opens that much longer for
   * `expired` (never for `unseal`): a session cookie that outlives its session tells the BFF the
   * session expired, rather than that there never was one. `final` records that the expiry is the
   * absolute lifetime, not an idle timeout.
   */
  seal(data: object, ttlSeconds: number, options?: SealOptions): Promise<string>
  /**
   * The data, or null when the seal is malformed, forged, expired or from an unknown secret.
   * With `cache`, a seal opened before answers from memory (see `SealerOptions`); the value is
   * then shared between callers and frozen, so it must be copied before it is changed.
   */
  unseal<T>(sealed: string, options?: { cache?: boolean }): Promise<T | null>
  /**
   * What an authentic seal held whose own expiry has passed (within its grace), with that expiry
   * (epoch seconds) and whether it was final; null for anything else, a live seal included.
   */
  expired<T>(sealed: string): Promise<{ value: T; exp: number; final: boolean } | null>
  /** True when `sealed` was made with an older secret and should be sealed again with the first. */
  isStale(sealed: string): Promise<boolean>
}

export interface SealOptions {
  /** How long past `ttlSeconds` the seal opens for `Sealer.expired`. @default 0 */
  graceSeconds?: number
  /** The expiry is the end of the session's absolute lifetime. */
  final?: boolean
}

/**
 * What a seal holds: the data, its own expiry and the end of its grace (epoch seconds; iron's own
 * expiry is on real time, not the app's clock), and whether the expiry is final.
 */
interface Sealed<T> {
  v?: T
  exp?: number
  g?: number
  f?: 1
}

export interface SealerOptions {
  /**
   * How many opened seals to remember, keyed by their exact sealed text: the session cookie
   * comes with every request, and opening it costs two key derivations, an HMAC and a decryption,
   * where a remembered one costs a map lookup. Least recently used first out; 0 turns it off.
   * Each entry keeps its seal's own expiry, and a sealer's secrets never change (a new secret
   * list means a new sealer), so a remembered answer is always the one unsealing would give.
   * @default 10_000
   * @example { cacheEntries: 0 }
   */
  cacheEntries?: number
  /**
   * Bound on the memory the remembered seals take, in bytes (approximate: twice the sealed text,
   * which covers the text and the value opened from it).
   * @default 16 MiB
   */
  cacheBytes?: number
  /**
   * The clock, in epoch milliseconds, that dates a seal's expiry and checks it: the app's clock
   * (`deps.now`), like every other expiry.
   * @default Date.now
   */
  now?: () => number
  /**
   * Makes and opens the seals. Default: iron-session (WebCrypto). The Node entry passes
   * `nodeIron` (src/adapters/node/crypto.ts): the same format through node:crypto, an order of
   * magnitude cheaper to open.
   */
  iron?: Iron
}

/** A seal opened before, remembered with what it held. */
interface OpenedSeal {
  sealed: string
  value: unknown
  /** The seal's own expiry, epoch seconds. */
  exp: number
  bytes: number
}

/** How much of the sealed text keys the cache: more than its HMAC (43 characters) and version. */
const KEY_CHARS = 64

export function createSealer(secrets: readonly string[], options: SealerOptions = {}): Sealer {
  if (secrets.length === 0) throw new Error('"secrets" must hold at least one secret')
  const maxEntries = options.cacheEntries ?? 10_000
  const maxBytes = options.cacheBytes ?? 16 * 1024 * 1024
  const now = options.now ?? Date.now
  const iron = options.iron ?? ironSession
  if (typeof now !== 'function') throw new TypeError('"now" must be a function')
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 0) {
    throw new TypeError('"cacheEntries" must be a non-negative integer')
  }
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new TypeError('"cacheBytes" must be a non-negative integer')
  }
  // iron tags each seal with a password id. Ids derived from the secret itself (not its position)
  // keep old cookies readable when an operator puts a new secret in front of the list.
  const passwords = passwordMap(secrets)
  iron.prepare?.(secrets)
  let currentId: string | undefined
  void passwords.then((p) => (currentId = p.currentId)).catch(() => {})

  // Map order is recency order: a hit moves its entry to the end, eviction takes the front.
  // Keyed by the seal's tail (its HMAC, as random as text gets) rather than the whole text:
  // hashing a 2-4 KB cookie would cost microseconds on every request. A hit still compares the
  // whole sealed text, so only the very seal that was opened is ever answered from memory.
  const cache = new Map<string, OpenedSeal>()
  const oldest = oldestFirst(cache)
  let cacheBytes = 0
  const keyOf = (sealed: string) => (sealed.length > KEY_CHARS ? sealed.slice(-KEY_CHARS) : sealed)

  function forget(key: string, entry: OpenedSeal) {
    cache.delete(key)
    cacheBytes -= entry.bytes
  }

  function remember(sealed: string, value: unknown, exp: number) {
    const bytes = sealed.length * 2
    if (maxEntries === 0 || bytes > maxBytes) return
    const key = keyOf(sealed)
    const same = cache.get(key)
    if (same) forget(key, same)
    while (cache.size >= maxEntries || cacheBytes + bytes > maxBytes) {
      const [stale, entry] = oldest()!
      forget(stale, entry)
    }
    cache.set(key, { sealed, value: deepFreeze(value), exp, bytes })
    cacheBytes += bytes
  }

  /** The seal's content if it is authentic and iron's own expiry (with the grace) allows. */
  async function open<T>(sealed: string): Promise<{ v: T; exp: number; g?: number; f?: 1 } | null> {
    const { all } = await passwords
    try {
      // ttl 0: the seal's own expiry was set when sealing; iron checks it either way.
      const data = (await iron.unseal(sealed, all)) as Sealed<T> | null
      if (!data?.v || typeof data.exp !== 'number') return null
      return data as { v: T; exp: number; g?: number; f?: 1 }
    } catch {
      return null
    }
  }

  return {
    async seal(data, ttlSeconds, sealOptions = {}) {
      const { currentId, current } = await passwords
      // Our own expiry next to iron's: iron accepts seals for 60 s past theirs (clock skew
      // allowance), and for the grace past ours, in which only `expired` reads them.
      const exp = Math.floor(now() / 1000) + ttlSeconds
      const grace = Math.max(0, sealOptions.graceSeconds ?? 0)
      const wrapped: Sealed<object> = {
        v: data,
        exp,
        ...(grace > 0 ? { g: exp + grace } : {}),
        ...(sealOptions.final ? { f: 1 } : {}),
      }
      const password = { id: currentId, secret: current[currentId]! }
      return iron.seal(wrapped, password, ttlSeconds + grace)
    },
    async unseal<T>(sealed: string, read?: { cache?: boolean }) {
      const key = read?.cache ? keyOf(sealed) : undefined
      const cached = key === undefined ? undefined : cache.get(key)
      if (cached && cached.sealed === sealed) {
        forget(key!, cached)
        if (cached.exp <= now() / 1000) return null
        cache.set(key!, cached)
        cacheBytes += cached.bytes
        return cached.value as T
      }
      const data = await open<T>(sealed)
      if (!data || data.exp <= now() / 1000) return null
      // Only seals that opened are remembered: garbage and forgeries cannot push real ones out.
      if (read?.cache) remember(sealed, data.v, data.exp)
      return data.v
    },
    async expired<T>(sealed: string) {
      const data = await open<T>(sealed)
      const t = now() / 1000
      if (!data || data.exp > t || typeof data.g !== 'number' || data.g <= t) return null
      return { value: data.v, exp: data.exp, final: data.f === 1 }
    },
    async isStale(sealed) {
      const id = currentId ?? (await passwords).currentId
      // iron's format: Fe26.2*<password id>*…
      const start = sealed.indexOf('*') + 1
      if (start === 0) return true
      const end = sealed.indexOf('*', start)
      return (end === -1 ? sealed.slice(start) : sealed.slice(start, end)) !== id
    },
  }
}

/** Freezes `value` and everything in it: a remembered value is shared by every request. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key])
  }
  return value
}

async function passwordMap(secrets: readonly string[]) {
  const all: Record<string, string> = {}
  for (const secret of secrets) all[await passwordId(secret)] = secret
  const currentId = await passwordId(secrets[0]!)
  return { current: { [currentId]: secrets[0]! }, currentId, all }
}

/** A short numeric id from the secret's SHA-256, so seals name their key without revealing it. */
async function passwordId(secret: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(secret))
  )
  return String(((digest[0]! << 16) | (digest[1]! << 8) | digest[2]!) + 1)
}

/**
 * When a seal expires (epoch milliseconds), read without opening it: iron writes it in the clear
 * (`Fe26.2*id*salt*iv*data*<expiration>*hmacSalt*hmac`). 0 for anything else. Only for ordering
 * seals of this BFF's own making; nothing is trusted on it.
 */
export function sealExpiresAt(sealed: string): number {
  return Number(sealed.split('*')[5]) || 0
}
