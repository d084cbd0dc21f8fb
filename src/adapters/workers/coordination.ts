/**
 * What Node keeps in Redis for the `cookie` store lives in the Durable Objects on Workers, since
 * it must hold in every isolate: revocations (a tombstone per session id, a revocation time per
 * sid and sub), the newest generation of each session, refresh coordination, the one-time
 * logout token ids (one object per key), and shared tokens (client credentials, exchanged).
 */
import type { ReplayGuard } from '../../core/oidc/replay-guard.ts'
import { revokedBy, sessionScope, type RevocationList } from '../../core/session/revocations.ts'
import type { SharedTokenCoordinator } from '../../core/tokens/shared-token.ts'
import type { RefreshCoordinator } from '../../core/tokens/refresh-coordinator.ts'
import { indexObject, sessionObject, type SessionObjectEnv } from './bindings.ts'
import { unwrap, type RefreshOutcome } from './refresh-outcome.ts'

/**
 * Revocations for the `cookie` store on Workers: a logged-out session id leaves a tombstone in its
 * session object, a revoked `sid` or `sub` is remembered by its index object (per IdP when
 * revoked with one: see `revokedScopes`). Checking a request reads the three objects in parallel.
 */
export function durableObjectRevocations(env: SessionObjectEnv): RevocationList {
  return {
    async revokeSession(id, until) {
      await sessionObject(env, id).end(until)
    },
    async revokeSid(sid, until, idp) {
      await indexObject(env, 'sid', sid).revoke(until, idp)
    },
    async revokeSub(sub, until, idp) {
      await indexObject(env, 'sub', sub).revoke(until, idp)
    },
    async recordGeneration(id, generation, until) {
      await sessionObject(env, id).recordGeneration(generation, until)
    },
    latestGeneration: (id) => sessionObject(env, id).latestGeneration(),
    async isRevoked(session) {
      // The plain revocations and those of the session's scope: its IdP's, or NO_IDP's.
      const scope = sessionScope(session)
      const [ended, sidRevokedAt, subRevokedAt] = await Promise.all([
        sessionObject(env, session.id).isEnded(),
        indexObject(env, 'sid', session.sid).revokedAt(scope),
        indexObject(env, 'sub', session.sub).revokedAt(scope),
      ])
      // A sid or sub revocation ends the sessions created up to it; later ones are new logins.
      return ended || revokedBy(sidRevokedAt, session) || revokedBy(subRevokedAt, session)
    },
  }
}

/**
 * Refresh coordination on Workers: a session's object is where every isolate's calls for it meet,
 * so the grant runs there, once per generation (session-object.ts), with the refresher the Worker
 * entry gave the object; the caller's `refresh` stays unused, as a closure cannot cross into it.
 * - `durable-object` store: the object refreshes the session it holds and stores the result; a
 *   caller holding an older generation gets the stored one.
 * - `cookie` store: the object refreshes the session the caller's cookie carries, and hands the
 *   result to late callers still holding the older cookie (for the token manager's grace window)
 *   instead of spending the refresh token again.
 */
export function durableObjectRefreshCoordinator(
  env: SessionObjectEnv,
  store: 'durable-object' | 'cookie'
): RefreshCoordinator {
  return {
    async refreshOnce(session, _refresh, resource, trace) {
      const object = sessionObject(env, session.id)
      // The trace crosses as plain data, so the object's grant is still the caller's child.
      const outcome =
        store === 'cookie'
          ? await object.refreshCarried(session, resource, trace)
          : await object.refresh(session.generation, resource, trace)
      return unwrap(outcome as RefreshOutcome)
    },
  }
}

/** One-time keys (logout token `jti`s) shared by every isolate: one object per key. */
export function durableObjectReplayGuard(env: SessionObjectEnv): ReplayGuard {
  return {
    claim: (key, ttlSeconds) => indexObject(env, 'once', key).claim(ttlSeconds),
    async release(key) {
      await indexObject(env, 'once', key).release()
    },
  }
}

/** How long one isolate may hold a shared token's renewal lock; a wait lasts at most twice that. */
const TOKEN_LOCK_MS = 15_000
const TOKEN_POLL_MS = 25

/**
 * Tokens shared by every isolate (client credentials, exchanged tokens): one object per token key
 * keeps the token and a renewal lock, as Redis does on Node. The grant runs in the isolate that
 * got the lock (the object needs no OIDC code); the others poll the object until it publishes.
 */
export function durableObjectSharedTokenCoordinator(
  env: SessionObjectEnv,
  options: { lockMs?: number; now?: () => number } = {}
): SharedTokenCoordinator {
  const lockMs = options.lockMs ?? TOKEN_LOCK_MS
  const now = options.now ?? Date.now
  return {
    async tokenOnce(key, grant) {
      const object = indexObject(env, 'token', key)
      const holder = crypto.randomUUID()
      const giveUpAt = now() + 2 * lockMs
      for (;;) {
        const turn = await object.sharedToken(holder, lockMs)
        if ('token' in turn) return turn.token
        if (turn.locked) {
          try {
            const token = await grant()
            await object.publishToken(holder, token)
            return token
          } catch (err) {
            await object.releaseTokenLock(holder).catch(() => {})
            throw err
          }
        }
        if (now() > giveUpAt) throw new Error('timed out waiting for the shared token lock')
        await new Promise((resolve) => setTimeout(resolve, TOKEN_POLL_MS))
      }
    },
  }
}
