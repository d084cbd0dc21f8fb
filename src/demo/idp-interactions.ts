/**
 * The demo IdP's interaction routes (`/interaction/:uid/…`): the login (password, then a one-time
 * code when the app asks for `acr_values=mfa`) and consent steps that oidc-provider leaves to the
 * application.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { checkPassword } from './idp-accounts.ts'
import type { InteractionDetails, OidcProvider } from './idp-provider.ts'
import { consentPage, errorPage, loginPage, mfaPage, sendHtml } from './idp-pages.ts'
import { MFA_CODE, MFA_REASON, loginResult, wantsMfa } from './idp-mfa.ts'

/** Interactions remembered between the password and the one-time code; more are abandoned ones. */
const MAX_PENDING_CODES = 1000

export function interactionHandler(provider: OidcProvider, offlineRequested: Set<string>) {
  // Interactions (by uid) whose user passed the password and still owes the one-time code. The
  // uid alone proves nothing: oidc-provider ties each interaction to the browser's own cookie.
  const passwordPassed = new Map<string, string>()

  return async function interactions(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const [, , uid = '', action = ''] = new URL(req.url ?? '/', 'http://idp').pathname.split('/')
      const details = await provider.interactionDetails(req, res)
      if (details.uid !== uid) return sendHtml(res, 400, errorPage('Unknown sign-in request.'))
      const { prompt, params } = details
      // The pages name the app by its client_name, as the user knows it.
      const client = params.client_id ? await provider.Client.find(params.client_id) : undefined
      const clientName = client?.clientName ?? params.client_id

      if (req.method === 'GET' && action === 'abort') {
        const result = { error: 'access_denied', error_description: 'End-User aborted interaction' }
        return await provider.interactionFinished(req, res, result, {
          mergeWithLastSubmission: false,
        })
      }

      if (req.method === 'GET' && action === '') {
        if (prompt.name === 'login') {
          const account = passwordPassed.get(uid) ?? codeOnly(details)
          if (account) return sendHtml(res, 200, mfaPage(uid, { account, clientName }))
          return sendHtml(res, 200, loginPage(uid, { login: params.login_hint, clientName }))
        }
        if (prompt.name === 'consent') {
          const offline = offlineRequested.has(details.cid)
          return sendHtml(res, 200, consentPage(uid, details, { clientName, offline }))
        }
        return sendHtml(res, 501, errorPage(`Prompt "${prompt.name}" is not supported.`))
      }

      if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
        const form = await readForm(req)
        const login = form.get('login') ?? ''
        if (!checkPassword(login, form.get('password') ?? '')) {
          const error = 'Invalid login or password.'
          return sendHtml(res, 200, loginPage(uid, { login, error, clientName }))
        }
        if (wantsMfa(params.acr_values)) {
          if (passwordPassed.size >= MAX_PENDING_CODES)
            passwordPassed.delete(passwordPassed.keys().next().value!)
          passwordPassed.set(uid, login)
          return sendHtml(res, 200, mfaPage(uid, { account: login, clientName }))
        }
        return await provider.interactionFinished(
          req,
          res,
          { login: loginResult(login, false) },
          { mergeWithLastSubmission: false }
        )
      }

      if (req.method === 'POST' && action === 'mfa' && prompt.name === 'login') {
        const account = passwordPassed.get(uid) ?? codeOnly(details)
        if (!account) return sendHtml(res, 400, errorPage('Sign in with your password first.'))
        const form = await readForm(req)
        if (form.get('code')?.trim() !== MFA_CODE) {
          const error = 'That code is not right. Please try again.'
          return sendHtml(res, 200, mfaPage(uid, { account, error, clientName }))
        }
        passwordPassed.delete(uid)
        return await provider.interactionFinished(
          req,
          res,
          { login: loginResult(account, true) },
          { mergeWithLastSubmission: false }
        )
      }

      if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({
              accountId: details.session?.accountId,
              clientId: params.client_id,
            })
        if (!grant) return sendHtml(res, 400, errorPage('The grant to update was not found.'))
        const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details
        if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '))
        if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims)
        // RFC 8707: scopes of the resources the login asked for, for their own tokens later.
        for (const [resource, scopes] of Object.entries(missingResourceScopes ?? {})) {
          grant.addResourceScope(resource, scopes.join(' '))
        }
        if (offlineRequested.delete(details.cid)) grant.addOIDCScope('offline_access')
        return await provider.interactionFinished(
          req,
          res,
          { consent: { grantId: await grant.save() } },
          { mergeWithLastSubmission: true }
        )
      }

      sendHtml(res, 405, errorPage('This action is not available here.'))
    } catch (error) {
      // oidc-provider errors (e.g. an expired interaction) carry a status and a safe description.
      const { statusCode, error_description } = error as { statusCode?: number } & Record<
        string,
        string
      >
      if (!statusCode || statusCode >= 500) console.error('[idp] interaction failed', error)
      if (!res.headersSent) {
        sendHtml(res, statusCode ?? 500, errorPage(error_description ?? 'Something went wrong.'))
      }
    }
  }
}

/**
 * The signed-in account, when the login prompt shows only because the request wants a second
 * factor its session lacks: then the one-time code is all that is asked. A prompt for any other
 * reason too (no session, `max_age` passed, `prompt=login`) asks for the password first.
 */
function codeOnly({ prompt, session }: InteractionDetails): string | undefined {
  const onlyCode = prompt.reasons.length > 0 && prompt.reasons.every((r) => r === MFA_REASON)
  return onlyCode ? session?.accountId : undefined
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  let body = ''
  for await (const chunk of req) {
    body += chunk
    if (body.length > 64 * 1024)
      throw Object.assign(new Error('form too large'), { statusCode: 413 })
  }
  return new URLSearchParams(body)
}
