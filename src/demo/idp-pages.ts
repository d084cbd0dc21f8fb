/**
 * The demo IdP's own pages: login, consent, logout confirmation and errors. Plain HTML forms, so
 * tests can drive them over HTTP without a browser.
 */
import type { ServerResponse } from 'node:http'
import type { InteractionDetails } from './idp-provider.ts'

/** The part of oidc-provider's request context a page renderer writes to. */
interface PageContext {
  host: string
  type: string
  body: unknown
}

export function loginPage(uid: string, login = '', error?: string): string {
  return page(
    'Sign in',
    `<h1>Sign in to the demo IdP</h1>
    ${error ? `<p class="error" role="alert">${esc(error)}</p>` : ''}
    <form method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
      <label>Login <input type="text" name="login" value="${esc(login)}" required autofocus></label>
      <label>Password <input type="password" name="password" required></label>
      <button type="submit">Sign in</button>
    </form>
    <p class="hint">User <code>demo</code> / password <code>demo</code>;
      any other login name with password <code>pass</code>.</p>
    <p><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`
  )
}

export function consentPage(uid: string, { params, prompt }: InteractionDetails): string {
  const scopes = (prompt.details.missingOIDCScope ?? []).filter(
    (scope) => scope !== 'openid' && scope !== 'offline_access'
  )
  const offline = params.scope?.includes('offline_access') || false
  return page(
    'Authorize',
    `<h1>Authorize ${esc(params.client_id ?? 'the application')}</h1>
    <ul>
      ${scopes.map((scope) => `<li>scope <code>${esc(scope)}</code></li>`).join('')}
      ${offline ? '<li>stay signed in (offline access)</li>' : ''}
      ${scopes.length === 0 && !offline ? '<li>confirm your earlier authorization</li>' : ''}
    </ul>
    <form method="post" action="/interaction/${esc(uid)}/confirm">
      <button type="submit" name="consent" value="yes">Allow</button>
    </form>
    <p><a href="/interaction/${esc(uid)}/abort">Cancel</a></p>`
  )
}

// oidc-provider hands over its own <form> (action and xsrf input); the buttons go inside it so
// the page is one plain form.
export async function logoutSource(ctx: PageContext, form: string): Promise<void> {
  const buttons = `<button type="submit" name="logout" value="yes">Yes, sign me out</button>
    <button type="submit">No, stay signed in</button></form>`
  ctx.type = 'html'
  ctx.body = page(
    'Sign out',
    `<h1>Sign out of ${esc(ctx.host)}?</h1>${form.replace('</form>', buttons)}`
  )
}

export async function postLogoutSuccessSource(ctx: PageContext): Promise<void> {
  ctx.type = 'html'
  ctx.body = page('Signed out', '<h1>Signed out</h1><p>You have been signed out.</p>')
}

export async function renderError(ctx: PageContext, out: Record<string, string>): Promise<void> {
  ctx.type = 'html'
  ctx.body = errorPage(`${out.error}: ${out.error_description ?? ''}`)
}

export function errorPage(message: string): string {
  return page(
    'Error',
    `<h1>Something went wrong</h1><p class="error" role="alert">${esc(message)}</p>`
  )
}

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 24rem; margin: 3rem auto; padding: 0 1rem; }
  label { display: block; margin: 0 0 .75rem; } input { display: block; width: 100%; padding: .4rem; }
  button { padding: .5rem 1rem; margin-right: .5rem; } .error { color: #b00020; } .hint { color: #555; }
</style></head>
<body>${body}</body></html>`
}

export function sendHtml(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(html),
  })
  res.end(html)
}

function esc(value: string): string {
  return value
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;')
}
