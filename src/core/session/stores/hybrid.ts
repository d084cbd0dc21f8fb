/**
 * `cookie` mode with a server store behind it: sessions that fit the cookie budget travel in the
 * cookie; a session too large for it (a big ID token, many claims) is kept server-side and the cookie
 * carries only its id. The rest of the BFF sees one store.
 */
import type { Logger } from '../../observe/log.ts'
import { maxInlineJsonBytes } from '../cookie.ts'
import type { RevocationList } from '../revocations.ts'
import type { Session, SessionStore } from '../types.ts'
import { cookieStore } from './cookie.ts'

export interface HybridStoreOptions {
  cookie: SessionStore
  server: SessionStore
  /**
   * Sessions whose JSON is longer than this go to the server store. Sealing adds about a third
   * (base64) plus ~200 bytes, so pick it from the cookie budget with that margin.
   */
  maxInlineBytes: number
  log?: Logger
}

export function hybridStore(options: HybridStoreOptions): SessionStore {
  const { cookie, server, maxInlineBytes } = options
  let warned = false
  const inline = (session: Session) => JSON.stringify(session).length <= maxInlineBytes

  function overflow(session: Session) {
    if (!warned) {
      warned = true
      options.log?.('warn', 'cookie.session_server_side', {
        reason: 'session larger than the cookie budget',
        bytes: JSON.stringify(session).length,
      })
    }
  }

  return {
    kind: 'cookie',
    async set(session) {
      if (inline(session)) return cookie.set(session)
      overflow(session)
      return server.set(session)
    },
    async update(session) {
      if (inline(session)) {
        // A slow write of an older generation must neither undo nor delete a newer one that
        // grew out of the cookie meanwhile and lives on the server.
        const stored = await server.get({ id: session.id })
        if (stored && stored.generation > session.generation) return null
        const ref = await cookie.update(session)
        // A session that shrank back into the cookie leaves no copy behind on the server.
        if (ref && stored) await server.delete(session)
        return ref
      }
      overflow(session)
      const ref = await server.update(session)
      if (ref) return ref
      // Refused: the server copy ended or holds a newer generation, or there is none because the
      // session lived in the cookie until this write made it too large. Only then does it move,
      // if the cookie store's own checks (revoked? a newer generation handed out?) let it.
      if (await server.get({ id: session.id })) return null
      if (!(await cookie.update(session))) return null
      return server.set(session)
    },
    get: (ref) => ('session' in ref ? cookie.get(ref) : server.get(ref)),
    async delete(session) {
      await Promise.all([cookie.delete(session), server.delete(session)])
    },
    async deleteBySid(sid, idp) {
      const [a, b] = await Promise.all([cookie.deleteBySid(sid, idp), server.deleteBySid(sid, idp)])
      return a + b
    },
    async deleteBySub(sub, idp) {
      const [a, b] = await Promise.all([cookie.deleteBySub(sub, idp), server.deleteBySub(sub, idp)])
      return a + b
    },
    // The sessions in browsers' cookies cannot be listed, so neither can the whole: the cookie
    // store refuses (501 not_supported) as it does on its own.
    listBySub: (sub, idp) => cookie.listBySub(sub, idp),
    async ping() {
      await Promise.all([cookie.ping(), server.ping()])
    },
  }
}

/**
 * The `cookie` store as both runtimes compose it when a shared server store is at hand (Redis on
 * Node, Durable Objects on Workers): what one instance revokes holds in all of them, and a session
 * too large for the cookie budget is kept in `server` while the cookie carries its id.
 */
export function sharedCookieStore(
  config: { sessionLifetimeSeconds: number; cookieMaxBytes: number; cookieTotalBytes: number },
  parts: { server: SessionStore; revocations: RevocationList; now?: () => number; log?: Logger }
): SessionStore {
  return hybridStore({
    cookie: cookieStore({
      now: parts.now,
      maxLifetimeSeconds: config.sessionLifetimeSeconds,
      revocations: parts.revocations,
    }),
    server: parts.server,
    maxInlineBytes: maxInlineJsonBytes({
      maxCookieBytes: config.cookieMaxBytes,
      maxTotalBytes: config.cookieTotalBytes,
    }),
    log: parts.log,
  })
}
