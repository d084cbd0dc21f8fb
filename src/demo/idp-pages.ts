/**
 * The demo IdP's own pages: login, one-time code, consent, logout confirmation, signed out and
 * errors. One card layout in the SPA's colours, its style inline and allowed by hash (no external resource, no
 * script), and plain HTML forms, so tests can drive them over HTTP without a browser (the first
 * form's first submit button is the way on: test/helpers/idp-login.ts).
 */
import { createHash } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { MFA_CODE } from './idp-mfa.ts'
import type { InteractionDetails } from './idp-provider.ts'

/** What the IdP calls itself on its pages. */
export const IDP_NAME = 'Demo Identity'

/** The part of oidc-provider's (koa) request context a page renderer reads and writes. */
interface PageContext {
  type: string
  body: unknown
  set(name: string, value: string): void
  oidc?: { client?: { clientId: string; clientName?: string } }
}

export interface LoginPageOptions {
  /** The login name to fill in again after a failed attempt, or the RP's `login_hint`. */
  login?: string
  error?: string
  /** The client's `client_name` (or id): "to continue to Demo App". */
  clientName?: string
}

export function loginPage(
  uid: string,
  { login = '', error, clientName }: LoginPageOptions
): string {
  const action = `/interaction/${esc(uid)}`
  return page(
    'Sign in',
    `<h1>Sign in</h1>
    <p class="sub">${clientName ? `to continue to <strong>${esc(clientName)}</strong>` : `with your ${IDP_NAME} account`}</p>
    ${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
    <form method="post" action="${action}/login" autocomplete="off">
      <label>Login <input type="text" name="login" value="${esc(login)}" required autofocus autocapitalize="none" spellcheck="false"></label>
      <label>Password <input type="password" name="password" required></label>
      <div class="stack"><button type="submit">Sign in</button></div>
    </form>
    <p class="hint">Demo accounts: <code>demo</code> with password <code>demo</code>,
      or any other name with password <code>pass</code>.</p>
    <p class="links"><a href="${action}/abort">Cancel</a></p>`
  )
}

export interface MfaPageOptions {
  /** Who passed the password (or is signed in already). */
  account: string
  error?: string
  clientName?: string
}

/** The second factor: a one-time code, which in this demo is always MFA_CODE, shown on the page. */
export function mfaPage(uid: string, { account, error, clientName }: MfaPageOptions): string {
  const action = `/interaction/${esc(uid)}`
  return page(
    'Two-step verification',
    `<h1>Two-step verification</h1>
    <p class="sub">${clientName ? `<strong>${esc(clientName)}</strong> asks for a second factor.` : 'A second factor is needed.'}
      Signed in as <strong>${esc(account)}</strong>.</p>
    ${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
    <form method="post" action="${action}/mfa" autocomplete="off">
      <label>One-time code <input type="text" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" required autofocus></label>
      <div class="stack"><button type="submit">Verify</button></div>
    </form>
    <p class="hint">Demo: the code is always <code>${MFA_CODE}</code>. A real IdP would send it to
      your phone or read it from an authenticator app.</p>
    <p class="links"><a href="${action}/abort">Cancel</a></p>`
  )
}

// What each scope lets the app know or do, in the words of a consent screen.
const SCOPE_TEXT: Record<string, string> = {
  profile: 'See your name',
  email: 'See your email address',
}

/**
 * `offline`: the client asked for offline_access (which oidc-provider has taken out of
 * `params.scope` by now: idp-provider.ts keeps the request's own word for it).
 */
export function consentPage(
  uid: string,
  { params, prompt, session }: InteractionDetails,
  { clientName = params.client_id ?? 'The application', offline = false } = {}
): string {
  const scopes = (prompt.details.missingOIDCScope ?? []).filter(
    (scope) => scope !== 'openid' && scope !== 'offline_access'
  )
  const items = scopes.map((scope) =>
    SCOPE_TEXT[scope] ? esc(SCOPE_TEXT[scope]) : `Use the scope <code>${esc(scope)}</code>`
  )
  if (offline) items.push('Keep you signed in while you are away')
  if (items.length === 0) items.push('Keep the access you allowed before')
  return page(
    'Allow access',
    `<div class="app"><span class="mark" aria-hidden="true">${esc(initial(clientName))}</span>
      <div><strong>${esc(clientName)}</strong><br><span class="muted">wants to access your account</span></div></div>
    <h1>Allow ${esc(clientName)} to:</h1>
    ${session?.accountId ? `<p class="sub">Signed in as <strong>${esc(session.accountId)}</strong></p>` : ''}
    <ul class="perms">${items.map((item) => `<li>${item}</li>`).join('')}</ul>
    <form method="post" action="/interaction/${esc(uid)}/confirm">
      <div class="stack"><button type="submit" name="consent" value="yes">Allow</button></div>
    </form>
    <p class="links"><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`
  )
}

// oidc-provider hands over its own <form> (action and xsrf input); the buttons go inside it so
// the page is one plain form. The client is known when the RP sent id_token_hint or client_id.
export async function logoutSource(ctx: PageContext, form: string): Promise<void> {
  const client = ctx.oidc?.client
  const name = client ? (client.clientName ?? client.clientId) : undefined
  const buttons = `<div class="stack">
      <button type="submit" name="logout" value="yes" autofocus>Yes, sign me out</button>
      <button type="submit" class="secondary">No, stay signed in</button></div></form>`
  send(
    ctx,
    page(
      'Sign out',
      `<h1>Sign out of ${esc(name ?? IDP_NAME)}?</h1>
      <p class="sub">${
        name
          ? `You will be signed out of ${esc(name)} and of ${IDP_NAME} on this device.`
          : `You will be signed out on this device, and the apps you used with ${IDP_NAME} are told.`
      }</p>
      ${form.replace('</form>', buttons)}`
    )
  )
}

export async function postLogoutSuccessSource(ctx: PageContext): Promise<void> {
  send(
    ctx,
    page(
      'Signed out',
      `<h1>Signed out</h1><p class="sub">You have been signed out of ${IDP_NAME}. You can close this window.</p>`
    )
  )
}

export async function renderError(ctx: PageContext, out: Record<string, string>): Promise<void> {
  // oidc-provider's descriptions start in lower case ("client is invalid").
  const message = out.error_description ?? 'the request could not be completed.'
  send(ctx, errorPage(message.charAt(0).toUpperCase() + message.slice(1), out.error))
}

export function errorPage(message: string, code?: string): string {
  return page(
    'Error',
    `<h1>Something went wrong</h1><p class="error" role="alert">${esc(message)}</p>
    ${code ? `<p class="code">Error code: <code>${esc(code)}</code></p>` : ''}`
  )
}

const STYLE = `:root{--ink:#1f2933;--muted:#52606d;--accent:#0b5fff;--accent-dark:#0847c2;--line:#e4e7eb;--field:#cbd2d9;--danger:#b42318;color-scheme:light}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;padding:3rem 1rem;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:linear-gradient(180deg,#e8eefc 0,#f3f5f8 22rem)}
.brand{display:flex;align-items:center;gap:.5rem;font-weight:700;font-size:1.05rem;margin:0 0 1.5rem}
.brand svg{width:30px;height:30px}
main{width:100%;max-width:25rem;background:#fff;border:1px solid var(--line);border-radius:14px;padding:2rem;box-shadow:0 1px 2px rgb(16 24 40/.05),0 16px 40px -16px rgb(16 24 40/.2)}
h1{font-size:1.4rem;line-height:1.3;margin:0 0 .25rem}
.sub,.muted{color:var(--muted)}.sub{margin:0 0 1.5rem}.sub:last-child{margin:0}
label{display:block;font-weight:600;font-size:.875rem;margin:0 0 1rem}
input{display:block;width:100%;margin-top:.375rem;padding:.65rem .75rem;font:inherit;font-weight:400;color:inherit;background:#fff;border:1px solid var(--field);border-radius:8px}
input:focus{outline:3px solid rgb(11 95 255/.2);border-color:var(--accent)}
.stack{display:grid;gap:.625rem;margin-top:1.5rem}
button{font:inherit;font-weight:600;padding:.7rem 1rem;border:1px solid var(--accent);border-radius:8px;background:var(--accent);color:#fff;cursor:pointer}
button:hover{background:var(--accent-dark)}
button:focus-visible,a:focus-visible{outline:3px solid rgb(11 95 255/.35);outline-offset:2px}
button.secondary{background:#fff;color:var(--ink);border-color:var(--field)}button.secondary:hover{background:#f5f7fa}
.error{margin:0 0 1rem;padding:.65rem .8rem;border:1px solid #fecdca;border-radius:8px;background:#fef3f2;color:var(--danger);font-size:.925rem}
.hint{margin:1.5rem 0 0;padding:.75rem .9rem;border-radius:8px;background:#f5f7fa;color:var(--muted);font-size:.875rem}
.code{color:var(--muted);font-size:.875rem;margin:0}
code{font:600 .85em ui-monospace,SFMono-Regular,Menlo,monospace;padding:.05rem .3rem;border-radius:4px;background:#e4e7eb;color:var(--ink)}
.links{margin:1.25rem 0 0;text-align:center;font-size:.925rem}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
.app{display:flex;align-items:center;gap:.75rem;margin:0 0 1.25rem;padding:.75rem;border:1px solid var(--line);border-radius:10px;line-height:1.35}
.mark{flex:none;width:40px;height:40px;border-radius:10px;display:grid;place-items:center;background:var(--accent);color:#fff;font-weight:700;font-size:1.1rem}
.perms{list-style:none;margin:0;padding:0;display:grid;gap:.5rem}
.perms li{display:flex;gap:.6rem;align-items:baseline}
.perms li::before{content:"\\2713";color:#067647;font-weight:700}
footer{margin-top:1.5rem;max-width:25rem;text-align:center;color:var(--muted);font-size:.8rem}`
// The only style of every page, allowed by its hash: the CSP needs no 'unsafe-inline'.
const CSP =
  `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; ` +
  "img-src data:; base-uri 'none'; frame-ancestors 'none'"

// A key in a circle: the IdP's mark, drawn inline (and as the tab icon, a data: URL).
const MARK_SHAPES =
  '<circle cx="16" cy="16" r="16" fill="#1f2933"/><circle cx="12.5" cy="16" r="4.5" fill="none" stroke="#fff" stroke-width="2.5"/>' +
  '<path d="M17 16h9m-3 0v3.5m-3.5-3.5v2.5" fill="none" stroke="#fff" stroke-width="2.5" stroke-linecap="round"/>'
const MARK = `<svg viewBox="0 0 32 32" aria-hidden="true">${MARK_SHAPES}</svg>`
const ICON = `data:image/svg+xml,${encodeURIComponent(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">${MARK_SHAPES}</svg>`)}`

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)} · ${IDP_NAME}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="${ICON}">
<style>${STYLE}</style></head>
<body><div class="brand">${MARK}<span>${IDP_NAME}</span></div>
<main>${body}</main>
<footer>${IDP_NAME} is the demo's own OpenID Provider: no real accounts, no real passwords.</footer>
</body></html>`
}

function send(ctx: PageContext, html: string): void {
  ctx.type = 'html'
  ctx.set('Content-Security-Policy', CSP)
  ctx.body = html
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': CSP,
    'content-length': Buffer.byteLength(html),
  })
  res.end(html)
}

function initial(name: string): string {
  return (name.match(/[a-z0-9]/i)?.[0] ?? '?').toUpperCase()
}

function esc(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}
