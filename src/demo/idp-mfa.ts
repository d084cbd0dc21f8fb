/**
 * The demo IdP's second factor: a login whose `acr_values` name `mfa` needs a one-time code after
 * the password (the code is fixed and shown on its page: this is a demo), and its tokens then say
 * `acr: "mfa"`; any other login says `acr: "pwd"`. A user signed in with a password only is asked
 * for the code alone when an app steps up.
 */
// @ts-expect-error -- untyped, see idp-provider.ts; the deep import skips lib/index.js likewise.
import * as interactionPolicy from 'oidc-provider/lib/helpers/interaction_policy/index.js'
import type { OidcContext } from './idp-provider.ts'

/** The demo's one-time code, shown on the page that asks for it. */
export const MFA_CODE = '123456'

/** The authentication levels the IdP issues, in its `acr_values_supported`. */
export const ACR = { password: 'pwd', mfa: 'mfa' } as const

/** What a finished login tells oidc-provider, by the factors the user passed. */
export function loginResult(accountId: string, mfa: boolean) {
  return mfa
    ? { accountId, acr: ACR.mfa, amr: ['pwd', 'otp'] }
    : { accountId, acr: ACR.password, amr: ['pwd'] }
}

/** Whether an authorization request's `acr_values` (space-separated) ask for the second factor. */
export function wantsMfa(acrValues: unknown): boolean {
  return typeof acrValues === 'string' && acrValues.split(' ').includes(ACR.mfa)
}

/** Why the login prompt shows when the session lacks the second factor the request asks for. */
export const MFA_REASON = 'mfa_required'

/**
 * oidc-provider's interaction policy with one more check in its login prompt: `acr_values` only
 * ask (an IdP may answer them with any level), so on its own oidc-provider would hand a session
 * with a password alone to a request for `mfa`. With `prompt=none` the check fails the request
 * with `login_required`, as a missing login would.
 */
export function mfaPolicy(): unknown {
  const { Check, base } = interactionPolicy as InteractionPolicyModule
  const policy = base()
  policy
    .get('login')!
    .checks.add(
      new Check(MFA_REASON, 'a second factor is required', 'login_required', (ctx: OidcContext) =>
        wantsMfa(ctx.oidc.params.acr_values) && ctx.oidc.session?.acr !== ACR.mfa
          ? Check.REQUEST_PROMPT
          : Check.NO_NEED_TO_PROMPT
      )
    )
  return policy
}

/**
 * `acr` and `auth_time` of the login an access token comes from, in its introspection answer, so
 * an API can ask for a second factor (RFC 9470) by what it learns of the token.
 */
export async function tokenAuthClaims(
  ctx: OidcContext
): Promise<{ acr?: string; auth_time?: number } | undefined> {
  const { AuthorizationCode, RefreshToken } = ctx.oidc.entities
  const source = AuthorizationCode ?? RefreshToken
  if (!source?.acr) return undefined
  return { acr: source.acr, auth_time: source.authTime }
}

interface InteractionPolicyModule {
  base(): Array<{ name: string; checks: { add(check: unknown): void } }> & {
    get(name: string): { checks: { add(check: unknown): void } } | undefined
  }
  Check: {
    new (
      reason: string,
      description: string,
      error: string,
      check: (ctx: OidcContext) => boolean
    ): unknown
    REQUEST_PROMPT: boolean
    NO_NEED_TO_PROMPT: boolean
  }
}
