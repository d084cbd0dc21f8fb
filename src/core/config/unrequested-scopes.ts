/**
 * Routes whose `scopes` the login never asks for. A `user`, `optional` or `exchange` route checks
 * its scopes against what the IdP granted the session at login; an IdP may grant scopes it was
 * not asked for (a client's default scopes), so this is no error, but most often such a route
 * answers 403 `insufficient_scope` to every user until the IdP's `scopes` list them, and nothing
 * else would say why. `client` routes request their scopes themselves.
 */
import type { Config } from './options.ts'

export interface UnrequestedScopes {
  /** The route's prefix. */
  route: string
  /** The IdP (a name from `idps`) whose login does not ask for them. */
  idp: string
  scopes: string[]
}

export function unrequestedScopes(config: Pick<Config, 'api' | 'idps'>): UnrequestedScopes[] {
  const found: UnrequestedScopes[] = []
  for (const route of config.api) {
    if (!route.scopes || route.token === 'client') continue
    for (const idp of config.idps) {
      // A route that takes only some IdPs' sessions never sees the others'.
      if (route.idps && !route.idps.includes(idp.name)) continue
      const requested = new Set(idp.scopes.split(' '))
      const scopes = route.scopes.filter((scope) => !requested.has(scope))
      if (scopes.length > 0) found.push({ route: route.prefix, idp: idp.name, scopes })
    }
  }
  return found
}
