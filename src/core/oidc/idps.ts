/**
 * The IdPs of one BFF, each with an OIDC client of its own: its own discovery, JWKS, client
 * authentication, scopes and routes' grants, so one IdP being away fails only its own logins and
 * refreshes. A session belongs to the IdP it logged in with (`Session.idp`): its refreshes,
 * revocation and logout go there and nowhere else.
 */
import type { Config, IdpConfig } from '../config/options.ts'
import { BffError } from '../errors.ts'
import type { Session } from '../session/types.ts'
import { createOidcClient } from './client.ts'
import { grantFor } from './grants.ts'
import type { OidcClient, OidcDeps } from './types.ts'

export interface Idp {
  config: IdpConfig
  oidc: OidcClient
}

export interface IdpRegistry {
  /** In configured order. */
  readonly list: readonly Idp[]
  /** The default of `/bff/login`, and the IdP of `client` routes' client-credentials tokens. */
  readonly first: Idp
  byName(name: string): Idp | undefined
  /**
   * The IdP a request's `?idp=<name>` names (`c.req.queries('idp')`); undefined without one.
   * @throws BffError 400 `unknown_idp` for a name no IdP has, an empty one or several.
   */
  named(names: readonly string[] | undefined): Idp | undefined
  /**
   * The IdP a session came from; a session from before the IdP was recorded belongs to the first
   * (then the only one). Undefined when its IdP is no longer configured.
   */
  of(session: Pick<Session, 'idp'>): Idp | undefined
  /** `of`, or 401 `session_expired` for a session whose IdP is no longer configured. */
  oidcFor(session: Pick<Session, 'idp'>): OidcClient
}

export function createIdpRegistry(config: Config, deps: OidcDeps = {}): IdpRegistry {
  const list = config.idps.map((idp, i) => ({
    config: idp,
    oidc: createOidcClient(configFor(config, idp, i === 0), {
      ...deps,
      // Several IdPs: each line says which one it is about.
      log:
        deps.log &&
        ((level, event, fields) => deps.log!(level, event, { idp: idp.name, ...fields })),
    }),
  }))
  const byName = new Map(list.map((idp) => [idp.config.name, idp]))
  const first = list[0]!
  const of = (session: Pick<Session, 'idp'>) =>
    session.idp === undefined ? first : byName.get(session.idp)
  return {
    list,
    first,
    byName: (name) => byName.get(name),
    named(names) {
      if (!names) return undefined
      const idp = names.length === 1 ? byName.get(names[0]!) : undefined
      if (!idp) {
        const known = list.map((one) => one.config.name).join(', ')
        throw new BffError(400, 'unknown_idp', `idp must name one configured IdP: ${known}.`)
      }
      return idp
    },
    of,
    oidcFor(session) {
      const idp = of(session)
      if (!idp) {
        throw new BffError(401, 'session_expired', 'The session has ended.', {
          cause: Object.assign(new Error('the IdP of the session is no longer configured'), {
            code: 'idp_not_configured',
          }),
        })
      }
      return idp.oidc
    },
  }
}

/**
 * The settings as one IdP's client sees them: its own issuer, client and scopes, and the routes
 * whose grants go to it (a route limited by `idps` to others never does; `client` routes use the
 * first IdP's client credentials).
 */
export function configFor(config: Config, idp: IdpConfig, first: boolean): Config {
  const api = config.api.filter((route) => {
    if (grantFor(route) === 'client_credentials') return first
    return !route.idps || route.idps.includes(idp.name)
  })
  return {
    ...config,
    issuer: idp.issuer,
    clientId: idp.clientId,
    clientSecret: idp.clientSecret,
    clientAuth: idp.clientAuth,
    clientKey: idp.clientKey,
    par: idp.par,
    dpop: idp.dpop,
    profile: idp.profile,
    scopes: idp.scopes,
    claims: idp.claims,
    idpName: idp.name,
    api,
    idps: [idp],
  }
}

/** One IdP's client for every session, or the client of each session's IdP. */
export type SessionOidc = OidcClient | ((session: Session) => OidcClient)

/** `SessionOidc` as a function of the session. */
export function oidcOfSession(oidc: SessionOidc): (session: Session) => OidcClient {
  return typeof oidc === 'function' ? oidc : () => oidc
}
