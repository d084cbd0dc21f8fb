/**
 * The BFF child's side of the many-sessions bench: from the cookie of one real login, `count`
 * more sessions of other users (clone.ts), written to the BFF's own store and sealed into cookies
 * with its secret, exactly as its login would write them. Outside the request path: the BFF under
 * load never runs this code.
 */
import { Cluster, Redis } from 'ioredis'
import { redisStore } from '../src/adapters/node/redis-store.ts'
import { cookieNames } from '../src/core/session/cookie-names.ts'
import { EXPIRED_COOKIE_GRACE_SECONDS } from '../src/core/session/manager.ts'
import { packRef } from '../src/core/session/packed-session.ts'
import { createSealer } from '../src/core/session/seal.ts'
import { createSessionCookies } from '../src/core/session/session-cookie.ts'
import type { Session, SessionRef, SessionStore } from '../src/core/session/types.ts'
import { cloneSession } from './clone.ts'

/** The grace a session cookie outlives its session by, as the BFF writes it. */
const GRACE = { graceSeconds: EXPIRED_COOKIE_GRACE_SECONDS }

/** Longest chunk value the BFF writes stays below this; a longer seal is split the same way. */
const CHUNK = 3800

export interface MintRequest {
  /** A real login's session cookie (its chunks joined), the template. */
  cookie: string
  count: number
  from?: number
  accessTokenTtl?: number
}

export function sessionMinter(env: Record<string, string>, memory: SessionStore | undefined) {
  const secrets = env.BFF_SESSION_SECRET!.split(',')
  const sealer = createSealer(secrets)
  // The cookie's forms as the BFF writes them: `<id>.<mac>` for a server store, the packed session.
  const forms = createSessionCookies(sealer, secrets)
  const name = cookieNames(env.BFF_BASE_URL!).session
  const kind = env.BFF_SESSION_STORE
  // BFF_REDIS_MODE=cluster (the bench's (e')): a Cluster client, so redisStore writes the
  // cluster layout the BFF reads.
  const redis =
    kind !== 'redis'
      ? undefined
      : env.BFF_REDIS_MODE === 'cluster'
        ? new Cluster(
            env.BFF_REDIS_URL!.split(',').map((url) => {
              const { hostname, port } = new URL(url)
              return { host: hostname, port: Number(port) }
            })
          )
        : new Redis(env.BFF_REDIS_URL!)
  const store =
    memory ?? (redis ? redisStore(redis, { prefix: env.BFF_REDIS_PREFIX ?? 'bff:' }) : undefined)

  /** The cookie header a browser would send for this sealed value, split into chunks as the BFF does. */
  const cookieOf = (sealed: string) =>
    Array.from({ length: Math.ceil(sealed.length / CHUNK) }, (_, i) => {
      const chunk = sealed.slice(i * CHUNK, (i + 1) * CHUNK)
      return `${i === 0 ? name : `${name}.${i}`}=${chunk}`
    }).join('; ')

  return {
    /**
     * `count` sessions of users `from`, `from + 1`, …; with `accessTokenTtl` (seconds) their access
     * tokens last that long instead of the template's (bench/soak.ts: the clones' random refresh
     * tokens mean nothing to the IdP, so they must never need a refresh).
     */
    async mint({ cookie, count, from = 0, accessTokenTtl }: MintRequest): Promise<string[]> {
      const ref = (await forms.open(cookie))?.ref
      if (!ref) throw new Error('the template cookie does not open')
      const template: Session | null = 'session' in ref ? ref.session : await store!.get(ref)
      if (!template) throw new Error('the template session is not in the store')
      const nowSeconds = Math.floor(Date.now() / 1000)
      const cookies: string[] = []
      // In batches: Redis writes of a batch leave together, the seals share the event loop.
      for (let start = 0; start < count; start += 500) {
        const batch = Array.from({ length: Math.min(500, count - start) }, async (_, j) => {
          const session = cloneSession(template, from + start + j, nowSeconds)
          if (accessTokenTtl) session.accessTokenExpiresAt = nowSeconds + accessTokenTtl
          const minted: SessionRef = store ? await store.set(session) : { session }
          const ttl = session.expiresAt - nowSeconds
          return cookieOf(
            'id' in minted
              ? await forms.idValue(minted.id, ttl, GRACE)
              : await sealer.seal(packRef(minted), ttl, GRACE)
          )
        })
        cookies.push(...(await Promise.all(batch)))
      }
      return cookies
    },
    close: () => redis?.quit(),
  }
}
