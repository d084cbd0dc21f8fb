/**
 * The `durable-object` store (Cloudflare Workers only): the client half that runs in the Worker and
 * calls the objects (session-object.ts, session-index-object.ts). Expiry is by alarm: each object
 * wipes itself once what it holds has expired, and reads check the time as well.
 *
 * Writes never go backwards: `update` needs a live session of the same or an older generation, so
 * a request that read the session before a logout or a refresh cannot write it back afterwards.
 *
 * Storage only: token refresh runs inside the session's object too, but through its own part,
 * `durableObjectRefreshCoordinator` (coordination.ts).
 */
import type { Session, SessionRef, SessionStore } from '../../core/session/types.ts'
import { indexObject, sessionObject, type SessionObjectEnv } from './bindings.ts'

export function durableObjectStore(env: SessionObjectEnv): SessionStore {
  return {
    kind: 'durable-object',

    async set(session) {
      await sessionObject(env, session.id).write(session, 'create')
      return { id: session.id }
    },

    async update(session) {
      const written = await sessionObject(env, session.id).write(session, 'update')
      return written ? { id: session.id } : null
    },

    async get(ref: SessionRef) {
      if (!('id' in ref) || typeof ref.id !== 'string') return null
      return (await sessionObject(env, ref.id).read()) as Session | null
    },

    async delete(session) {
      await sessionObject(env, session.id).remove()
    },

    // Index objects are by the raw sid and sub; with `idp`, they end and list only that IdP's
    // sessions (and those with no recorded idp), asking each session's object.
    deleteBySid: (sid, idp) => indexObject(env, 'sid', sid).endAll('sid', idp),

    deleteBySub: (sub, idp) => indexObject(env, 'sub', sub).endAll('sub', idp),

    async listBySub(sub, idp) {
      return (await indexObject(env, 'sub', sub).sessions(idp)) as Session[]
    },

    async ping() {
      await indexObject(env, 'health', 'ping').ping()
    },
  }
}
