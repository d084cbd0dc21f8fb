/**
 * A session as the `cookie` store's cookie carries it: the same data in fewer bytes, since the
 * whole session travels with every request. Lossless: short names for the session's own fields,
 * and nothing the session already says twice (the ID token's `sub` and `sid` claims, which the
 * session holds as `sub` and `sid`; `createdAt`, which `createdAtMs` gives). Unknown fields pass
 * as they are, so a field added later is never lost, only not shortened.
 *
 * The cookie's ref is `{ s: packed }`; cookies of the older form `{ session }` still open.
 */
import type { Session, SessionRef } from './types.ts'

/** A packed session's ref, as sealed into the cookie. */
export interface PackedRef {
  s: Record<string, unknown>
}

// Field -> its name in the cookie. Never reuse or change a short name: cookies in browsers
// were written with them. The claims object keeps its claims' own names.
const SHORT: ReadonlyMap<string, string> = new Map(
  Object.entries({
    id: 'i',
    sid: 'd',
    sub: 'u',
    claims: 'c',
    idp: 'p',
    scope: 'o',
    idToken: 't',
    accessToken: 'a',
    refreshToken: 'r',
    dpopKey: 'k',
    tokenType: 'y',
    accessTokenExpiresAt: 'ae',
    accessTokenLifetime: 'al',
    createdAt: 'ca',
    createdAtMs: 'cm',
    expiresAt: 'e',
    absoluteExpiresAt: 'ax',
    generation: 'g',
    resourceTokens: 'rt',
    exchangedTokens: 'xt',
  })
)
const LONG: ReadonlyMap<string, string> = new Map([...SHORT].map(([long, short]) => [short, long]))
/** The claims dropped as duplicates: `u` for `sub`, `d` for `sid`. */
const DROPPED = 'cd'
/** Names an unknown field cannot have as it is in the cookie: they are escaped with `_`. */
const RESERVED = (key: string) => LONG.has(key) || key === DROPPED || key.startsWith('_')

/** `session` packed for the cookie. */
export function packSession(session: Session): Record<string, unknown> {
  // No prototype: an escaped `_proto__` field is just a field.
  const packed: Record<string, unknown> = Object.create(null)
  for (const [key, value] of Object.entries(session)) {
    if (value === undefined) continue
    if (key === 'createdAt' && session.createdAtMs !== undefined) {
      // Restored from createdAtMs, unless it says something else (then kept).
      if (Math.floor(session.createdAtMs / 1000) === value) continue
    }
    if (key === 'claims') {
      const { claims, dropped } = packClaims(session)
      packed.c = claims
      if (dropped) packed[DROPPED] = dropped
      continue
    }
    // An unknown field whose name is some field's short name would be read back as that field.
    packed[SHORT.get(key) ?? (RESERVED(key) ? `_${key}` : key)] = value
  }
  return packed
}

/** What `packSession` packed, as it was. */
export function unpackSession(packed: Record<string, unknown>): Session {
  const session: Record<string, unknown> = {}
  let dropped = ''
  for (const [key, value] of Object.entries(packed)) {
    if (key === DROPPED) {
      dropped = typeof value === 'string' ? value : ''
      continue
    }
    const name = LONG.get(key) ?? (key.startsWith('_') ? key.slice(1) : key)
    // An own "__proto__" field (JSON.parse makes one) stays a field instead of becoming the
    // prototype: nothing a cookie says can reach Object.prototype, and no field is lost.
    if (name === '__proto__') {
      Object.defineProperty(session, name, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      })
    } else session[name] = value
  }
  const out = session as unknown as Session
  if (out.createdAt === undefined && typeof out.createdAtMs === 'number') {
    out.createdAt = Math.floor(out.createdAtMs / 1000)
  }
  if (dropped && out.claims) out.claims = restoreClaims(out, dropped)
  return out
}

/**
 * The claims with the dropped `sub` and `sid` first again. One literal per case: spreading the
 * claims after an object built a field at a time left V8 making new hidden classes on every
 * call, about 6 µs for each cookie opened.
 */
function restoreClaims(session: Session, dropped: string): Record<string, unknown> {
  const { sub, sid, claims } = session
  const hasSub = dropped.includes('u')
  const hasSid = dropped.includes('d')
  if (hasSub && hasSid) return { sub, sid, ...claims }
  if (hasSub) return { sub, ...claims }
  if (hasSid) return { sid, ...claims }
  return { ...claims }
}

/** The session's claims without `sub` and `sid` when they equal the session's own. */
function packClaims(session: Session): { claims: Record<string, unknown>; dropped: string } {
  const { claims } = session
  const sub = claims.sub === session.sub
  const sid = claims.sid === session.sid
  if (!sub && !sid) return { claims, dropped: '' }
  // No prototype: an own "__proto__" claim is copied as a claim, not made the prototype.
  const packed: Record<string, unknown> = Object.create(null)
  for (const [name, value] of Object.entries(claims)) {
    if ((name === 'sub' && sub) || (name === 'sid' && sid)) continue
    packed[name] = value
  }
  return { claims: packed, dropped: (sub ? 'u' : '') + (sid ? 'd' : '') }
}

/** The ref sealed into the cookie: a session packed, an id as it is. */
export function packRef(ref: SessionRef): PackedRef | { id: string } {
  return 'session' in ref ? { s: packSession(ref.session) } : ref
}

/** A ref opened from a cookie, of either form: `{ s }` unpacked, `{ session }` and `{ id }` as they are. */
export function unpackRef(ref: unknown): SessionRef | null {
  if (!ref || typeof ref !== 'object') return null
  const packed = (ref as Partial<PackedRef>).s
  if (packed && typeof packed === 'object') return { session: unpackSession(packed) }
  return ref as SessionRef
}
