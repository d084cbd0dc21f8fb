/**
 * The only place that speaks OpenID Connect: a thin layer over openid-client v6, which does all the
 * protocol work and every check (PKCE, state, nonce, `iss`, ID token signature, `aud`, expiry).
 * openid-client errors are mapped to `BffError`s in errors.ts and nowhere else.
 */
import * as jose from 'jose'
import * as client from 'openid-client'
import type { Config } from '../config/options.ts'
import { BffError } from '../errors.ts'
import { createDiscovery } from './discovery.ts'
import { dpopOption, tokenTypeOf } from './dpop-grant.ts'
import type { DpopKey } from './dpop.ts'
import { checkSenderConstrained } from './fapi2.ts'
import { AuthorizationError, toBffError } from './errors.ts'
import { createRouteGrants, loginResources, reportUnsupportedGrants } from './grants.ts'
import { idTokenProblem } from './id-token.ts'
import { invalidLogoutToken, verifyLogoutToken } from './logout-token.ts'
import { traceParameters } from './trace-params.ts'
import type { OidcClient, OidcDeps } from './types.ts'
import type { TraceContext } from '../observe/trace.ts'

/**
 * The client of one IdP: `config`'s first IdP (`configFor` in idps.ts gives each IdP its view);
 * a `Config` from before `idps` existed is its single IdP at `/bff/callback`.
 */
export function createOidcClient(config: Config, deps: OidcDeps = {}): OidcClient {
  const now = deps.now ?? Date.now
  const redirectUri = `${config.baseUrl}${config.idps?.[0]?.callbackPath ?? '/bff/callback'}`
  const log = deps.log ?? (() => {})
  const { configuration, idpStatus, checkAtStartup } = createDiscovery(
    config,
    deps,
    redirectUri,
    (discovered) => {
      reportUnsupportedGrants(config, discovered.serverMetadata(), log)
      reportParSupport(config, discovered.serverMetadata(), log)
    }
  )
  // RFC 8707: the resources of `user` routes are asked for at login, to be granted later.
  const resources = loginResources(config)
  let jwks: ReturnType<typeof jose.createRemoteJWKSet> | undefined
  function lifetime(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers) {
    // Without expires_in we cannot know; assume a short life so the token is refreshed early.
    return tokens.expires_in ?? 300
  }

  function expiresAt(tokens: client.TokenEndpointResponse & client.TokenEndpointResponseHelpers) {
    return Math.floor(now() / 1000) + lifetime(tokens)
  }

  /**
   * The login's URL at the IdP. Under PAR (RFC 9126) the parameters are pushed to the IdP with the
   * client's authentication first, so the browser carries only `client_id` and `request_uri`.
   */
  async function authorizationUrl(
    oidc: client.Configuration,
    query: URLSearchParams,
    dpop: DpopKey | undefined,
    trace: TraceContext | undefined
  ) {
    const { DPoP } = dpopOption(oidc, dpop)
    if (!parWanted(config, oidc.serverMetadata())) {
      // RFC 9449 10: the code is bound to the session's key, redeemable only with its proofs.
      if (DPoP) query.set('dpop_jkt', await DPoP.calculateThumbprint())
      return client.buildAuthorizationUrl(oidc, query)
    }
    if (!oidc.serverMetadata().pushed_authorization_request_endpoint) {
      log('error', 'oidc.par_unsupported', { reason: PAR_UNSUPPORTED })
      throw new BffError(503, 'idp_unavailable', 'The identity provider is unavailable.', {
        cause: Object.assign(new Error(PAR_UNSUPPORTED), { code: 'par_unsupported' }),
      })
    }
    // Only the push is a call: a URL without PAR goes to the browser, and carries no trace.
    for (const [name, value] of Object.entries(traceParameters(trace))) query.set(name, value)
    try {
      // A proof on the push binds the code to the key as dpop_jkt would (RFC 9449 10.1).
      return await client.buildAuthorizationUrlWithPAR(oidc, query, { DPoP })
    } catch (err) {
      throw toBffError(err, 'par')
    }
  }

  return {
    async authorizationRequest({ prompt, acr, maxAge, dpop, trace }) {
      const oidc = await configuration()
      const codeVerifier = client.randomPKCECodeVerifier()
      const state = client.randomState()
      const nonce = client.randomNonce()
      const params: Record<string, string> = {
        redirect_uri: redirectUri,
        scope: config.scopes,
        code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      }
      if (prompt) params.prompt = prompt
      if (acr?.length) params.acr_values = acr.join(' ')
      if (maxAge !== undefined) params.max_age = String(maxAge)
      const query = new URLSearchParams(params)
      for (const resource of resources) query.append('resource', resource)
      return { url: await authorizationUrl(oidc, query, dpop, trace), state, nonce, codeVerifier }
    },

    redirectUri,

    async callback(callbackUrl, tx, dpop, trace) {
      const oidc = await configuration()
      let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>
      try {
        tokens = await client.authorizationCodeGrant(
          oidc,
          callbackUrl,
          {
            pkceCodeVerifier: tx.codeVerifier,
            expectedState: tx.state,
            expectedNonce: tx.nonce,
            idTokenExpected: true,
          },
          traceParameters(trace),
          dpopOption(oidc, dpop)
        )
      } catch (err) {
        if (err instanceof client.AuthorizationResponseError)
          throw new AuthorizationError(err.error)
        throw toBffError(err, 'callback')
      }
      checkSenderConstrained(config, tokens)
      const idClaims = tokens.claims()!
      const problem = await idTokenProblem(
        tokens.id_token!,
        idClaims,
        tokens.access_token,
        callbackUrl.searchParams.get('code'),
        now() / 1000
      )
      if (problem) {
        // The code is what the log shows (errorReason); the message never reaches the client.
        const cause = Object.assign(new Error(`ID token refused: ${problem}`), { code: problem })
        throw new BffError(400, 'invalid_callback', 'The login response failed validation.', {
          cause,
        })
      }
      let claims: Record<string, unknown> = { ...idClaims }
      if (oidc.serverMetadata().userinfo_endpoint) {
        try {
          // The expected subject makes openid-client refuse a userinfo answer about someone else.
          const userinfo = await client.fetchUserInfo(
            oidc,
            tokens.access_token,
            idClaims.sub,
            dpopOption(oidc, dpop)
          )
          claims = { ...userinfo, ...idClaims }
        } catch (err) {
          throw toBffError(err, 'callback')
        }
      }
      return {
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token,
        idToken: tokens.id_token,
        accessTokenExpiresAt: expiresAt(tokens),
        accessTokenLifetime: lifetime(tokens),
        ...tokenTypeOf(tokens),
        scope: scopeOf(tokens),
        refreshTokenExpiresAt:
          typeof tokens.refresh_expires_in === 'number' && tokens.refresh_expires_in > 0
            ? Math.floor(now() / 1000) + tokens.refresh_expires_in
            : undefined,
        claims,
      }
    },

    async refresh(refreshToken, expectedSub, dpop, trace) {
      const oidc = await configuration()
      try {
        const tokens = await client.refreshTokenGrant(
          oidc,
          refreshToken,
          traceParameters(trace),
          dpopOption(oidc, dpop)
        )
        checkSenderConstrained(config, tokens)
        const idClaims = tokens.claims()
        // OIDC Core 12.2: a refreshed ID token must be about the same user.
        if (idClaims && idClaims.sub !== expectedSub) {
          throw new BffError(401, 'session_expired', 'The session has ended.', {
            cause: Object.assign(new Error('refreshed ID token has a different sub'), {
              code: 'id_token_sub_changed',
            }),
          })
        }
        return {
          accessToken: tokens.access_token,
          refreshToken: tokens.refresh_token ?? refreshToken,
          idToken: tokens.id_token,
          accessTokenExpiresAt: expiresAt(tokens),
          accessTokenLifetime: lifetime(tokens),
          ...tokenTypeOf(tokens),
          scope: scopeOf(tokens),
          claims: idClaims ? { ...idClaims } : undefined,
        }
      } catch (err) {
        throw toBffError(err, 'refresh')
      }
    },

    async revoke(token, hint, trace) {
      const oidc = await configuration()
      if (!oidc.serverMetadata().revocation_endpoint) return
      try {
        await client.tokenRevocation(oidc, token, {
          token_type_hint: hint,
          ...traceParameters(trace),
        })
      } catch (err) {
        throw toBffError(err, 'revocation')
      }
    },

    async endSessionUrl({ idTokenHint, postLogoutRedirectUri }) {
      const oidc = await configuration()
      if (!oidc.serverMetadata().end_session_endpoint) return null
      // Some IdPs (Glewlwyd) ignore post_logout_redirect_uri unless a state comes with it. Nothing
      // comes back to check: the landing page is the same whoever sent the browser there.
      const params: Record<string, string> = {
        post_logout_redirect_uri: postLogoutRedirectUri,
        state: client.randomState(),
      }
      if (idTokenHint) params.id_token_hint = idTokenHint
      return client.buildEndSessionUrl(oidc, params)
    },

    async validateLogoutToken(token) {
      const server = (await configuration()).serverMetadata()
      if (!server.jwks_uri) throw invalidLogoutToken('the IdP publishes no jwks_uri')
      // jose refetches the key set when it meets an unknown kid, so IdP key rotation just works.
      jwks ??= jose.createRemoteJWKSet(new URL(server.jwks_uri), {
        timeoutDuration: config.idpTimeoutSeconds * 1000,
        ...(deps.fetch ? { [jose.customFetch]: deps.fetch } : {}),
      })
      return verifyLogoutToken(token, { server, jwks, clientId: config.clientId, now })
    },

    idpStatus,
    checkAtStartup,
    ...createRouteGrants(config, deps, { configuration }),
  }
}

const PAR_UNSUPPORTED =
  "par is on, but the IdP's discovery has no pushed_authorization_request_endpoint: logins answer 503"

/** Whether logins push their parameters: `par`, or an IdP that requires it of every client. */
export function parWanted(config: Config, metadata: client.ServerMetadata): boolean {
  return config.par === true || metadata.require_pushed_authorization_requests === true
}

/** At discovery: a `par` the IdP cannot serve is said once, before the first login fails. */
export function reportParSupport(
  config: Config,
  metadata: client.ServerMetadata,
  log: NonNullable<OidcDeps['log']>
): void {
  if (parWanted(config, metadata) && !metadata.pushed_authorization_request_endpoint) {
    log('error', 'oidc.par_unsupported', { reason: PAR_UNSUPPORTED })
  }
}

/** The scopes a token response granted, or undefined when it does not say (RFC 6749 5.1). */
function scopeOf(tokens: client.TokenEndpointResponse): string | undefined {
  // Space-separated (RFC 6749 3.3); extra spaces are not a scope.
  const scope = typeof tokens.scope === 'string' ? tokens.scope.trim().replace(/\s+/g, ' ') : ''
  return scope || undefined
}
