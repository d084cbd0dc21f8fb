// oidc-provider's own DPoP helpers, used by the demo IdP's token exchange as its built-in grants
// use them; the package ships no types for its lib/ modules.
declare module 'oidc-provider/lib/helpers/validate_dpop.js' {
  /** The request's verified DPoP proof (thumbprint, jti, iat), or undefined without one. */
  export default function validateDpop(provider: unknown, ctx: unknown): Promise<unknown>
}
declare module 'oidc-provider/lib/helpers/grant_common.js' {
  /** Checks the proof's replay and binds `token` to its key (`cnf.jkt`). */
  export function applyDpopBinding(
    provider: unknown,
    ctx: unknown,
    dPoP: unknown,
    token: unknown
  ): Promise<void>
}
