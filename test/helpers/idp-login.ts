/**
 * Drives the demo IdP's HTML pages (src/demo/idp.ts) over plain HTTP, the way a browser with
 * JavaScript switched off would: follow redirects, fill the form, submit it, repeat.
 */
import { redirectLocation, type CookieJar } from './http.ts'

export interface Credentials {
  login: string
  password: string
  /**
   * The one-time code to enter when the IdP asks for a second factor (`acr_values=mfa`). Without
   * it, being asked is an error.
   */
  code?: string
}

export interface HtmlForm {
  action: URL
  method: 'GET' | 'POST'
  /** Hidden and text inputs with their values, plus the first named submit button. */
  fields: Record<string, string>
}

const MAX_STEPS = 20

/**
 * Starts at the IdP authorization URL (e.g. the Location of the BFF's `/bff/login` redirect), signs
 * in (with the one-time code too when asked and given), grants consent and returns the redirect back to the client's redirect_uri without following
 * it. With an existing IdP session in `jar` there may be no page at all.
 * Throws when the IdP rejects the credentials or answers with an error page.
 */
export async function loginAtIdp(
  jar: CookieJar,
  authorizeUrl: string | URL,
  { login, password, code }: Credentials
): Promise<Response> {
  let credentialsSent = false
  let codeSent = false
  const response = await driveIdp(jar, authorizeUrl, (form, html) => {
    if ('code' in form.fields) {
      if (code === undefined) throw new Error('the IdP asks for a one-time code; none was given')
      if (codeSent) throw new Error(`the IdP rejected code "${code}": ${pageMessage(html)}`)
      codeSent = true
      return { ...form.fields, code }
    }
    if (!('password' in form.fields)) return form.fields // consent, or an auto-submit form
    if (credentialsSent) {
      throw new Error(`the IdP rejected login "${login}": ${pageMessage(html)}`)
    }
    credentialsSent = true
    return { ...form.fields, login, password }
  })
  if (!redirectLocation(response)) {
    throw new Error(
      `expected a redirect to the client, got a page: ${pageMessage(await response.text())}`
    )
  }
  return response
}

/**
 * Opens the IdP end-session URL (the BFF's logout redirect), confirms "Yes, sign me out" and
 * returns the redirect to the post_logout_redirect_uri without following it. When the request
 * named no post_logout_redirect_uri, returns the IdP's own signed-out page instead.
 */
export async function confirmIdpLogout(
  jar: CookieJar,
  endSessionUrl: string | URL
): Promise<Response> {
  return driveIdp(jar, endSessionUrl, (form) => form.fields)
}

/**
 * Follows redirects within the IdP's origin and submits every form page through `fill`. Returns
 * the first redirect that leaves the origin, or the first page without a form (unread).
 */
async function driveIdp(
  jar: CookieJar,
  start: string | URL,
  fill: (form: HtmlForm, html: string) => Record<string, string>
): Promise<Response> {
  const origin = new URL(start).origin
  let response = await jar.get(start)
  for (let step = 0; step < MAX_STEPS; step++) {
    const next = redirectLocation(response)
    if (next) {
      if (next.origin !== origin) return response
      response = await jar.follow(response)
      continue
    }
    const html = await response.clone().text()
    if (!response.ok) {
      throw new Error(`IdP answered ${response.status} at ${response.url}: ${pageMessage(html)}`)
    }
    const form = parseForm(html, response.url)
    if (!form) return response
    const fields = fill(form, html)
    response =
      form.method === 'GET'
        ? await jar.get(withQuery(form.action, fields))
        : await jar.post(form.action, { form: fields })
  }
  throw new Error(`no way out of the IdP after ${MAX_STEPS} steps (last: ${response.url})`)
}

/** The first `<form>` of a page, read with regular expressions (the IdP's pages are simple). */
export function parseForm(html: string, pageUrl: string | URL): HtmlForm | undefined {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html)
  if (!match) return undefined
  const [, formAttributes = '', inner = ''] = match
  const attributes = parseAttributes(formAttributes)
  const fields: Record<string, string> = {}
  for (const [, tag = ''] of inner.matchAll(/<input\b([^>]*)>/gi)) {
    const input = parseAttributes(tag)
    const type = (input.type ?? 'text').toLowerCase()
    if (!input.name || ['submit', 'button', 'reset', 'image', 'file'].includes(type)) continue
    if ((type === 'checkbox' || type === 'radio') && !('checked' in input)) continue
    fields[input.name] = input.value ?? ''
  }
  // A browser sends the name and value of the button that was clicked: take the first one.
  for (const [, element = '', tag = ''] of inner.matchAll(/<(button|input)\b([^>]*)>/gi)) {
    const button = parseAttributes(tag)
    const type = (
      button.type ?? (element.toLowerCase() === 'button' ? 'submit' : 'text')
    ).toLowerCase()
    if (type !== 'submit') continue
    if (button.name) fields[button.name] = button.value ?? ''
    break
  }
  return {
    action: new URL(attributes.action ?? '', pageUrl),
    method: attributes.method?.toUpperCase() === 'POST' ? 'POST' : 'GET',
    fields,
  }
}

function parseAttributes(source: string): Record<string, string | undefined> {
  const attributes: Record<string, string | undefined> = {}
  const pattern = /([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g
  for (const [, name = '', double, single, bare] of source.matchAll(pattern)) {
    const value = double ?? single ?? bare
    attributes[name.toLowerCase()] = value === undefined ? undefined : decodeEntities(value)
  }
  return attributes
}

function decodeEntities(text: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }
  return text.replace(/&(#x[\da-f]+|#\d+|[a-z]+);/gi, (entity, code: string) => {
    if (code[0] !== '#') return named[code.toLowerCase()] ?? entity
    const point =
      code[1] === 'x' || code[1] === 'X' ? parseInt(code.slice(2), 16) : Number(code.slice(1))
    return String.fromCodePoint(point)
  })
}

// The page's error paragraph if it has one, else its text, shortened: enough for a failure message.
function pageMessage(html: string): string {
  const error = /<p class="error"[^>]*>([\s\S]*?)<\/p>/i.exec(html)?.[1]
  const text = (error ?? html.replace(/<(script|style)\b[\s\S]*?<\/\1>/gi, ''))
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
  return decodeEntities(text).slice(0, 300)
}

function withQuery(url: URL, fields: Record<string, string>): URL {
  const target = new URL(url)
  for (const [name, value] of Object.entries(fields)) target.searchParams.set(name, value)
  return target
}
