/**
 * The `cookie` store: the sealed cookie carries the whole session, so any instance can serve any
 * request with no shared state. Deletion goes through a revocation list, since a cookie already in
 * a browser (or a thief's hands) cannot be recalled.
 */
import { BffError } from '../../errors.ts'
import { memoryRevocationList, type RevocationList } from '../revocations.ts'
import { copyValue } from '../copy.ts'
import type { SessionStore } from '../types.ts'

export interface CookieStoreOptions {
  revocations?: RevocationList
  /** Longest session lifetime in seconds: how long a sid or sub revocation must be remembered. */
  maxLifetimeSeconds?: number
  /** Epoch milliseconds. */
  now?: () => number
}

export function cookieStore(options: CookieStoreOptions = {}): SessionStore {
  const now = options.now ?? Date.now
  const revocations = options.revocations ?? memoryRevocationList(now)
  const maxLifetime = options.maxLifetimeSeconds ?? 12 * 3600
  const horizon = () => Math.floor(now() / 1000) + maxLifetime

  return {
    kind: 'cookie',
    async set(session) {
      return { session: copyValue(session) }
    },
    // The cookie is the store: an update is a new cookie, unless the session was revoked meanwhile
    // or a newer generation was already handed out (a slow response must not undo a refresh).
    async update(session) {
      if (await revocations.isRevoked(session)) return null
      const latest = (await revocations.latestGeneration?.(session.id)) ?? 0
      if (latest > session.generation) return null
      if (latest < session.generation) {
        const until = session.absoluteExpiresAt ?? session.expiresAt
        await revocations.recordGeneration?.(session.id, session.generation, until)
      }
      return { session: copyValue(session) }
    },
    async get(ref) {
      if (!('session' in ref)) return null
      const { session } = ref
      if (session.expiresAt <= now() / 1000) return null
      if (await revocations.isRevoked(session)) return null
      return copyValue(session)
    },
    async delete(session) {
      await revocations.revokeSession(session.id, session.expiresAt)
    },
    // A cookie store cannot count cookies it does not hold: it answers 0 and revokes them all
    // (with `idp`, that IdP's and those with no recorded idp: see `revokedScopes`).
    async deleteBySid(sid, idp) {
      await revocations.revokeSid(sid, horizon(), idp)
      return 0
    },
    async deleteBySub(sub, idp) {
      await revocations.revokeSub(sub, horizon(), idp)
      return 0
    },
    async listBySub() {
      throw new BffError(
        501,
        'not_supported',
        "The cookie store cannot list sessions: they live only in the browsers' cookies."
      )
    },
    async ping() {},
  }
}
