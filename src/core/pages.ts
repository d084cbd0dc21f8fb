/**
 * Readable pages for browser navigations that end in an error (a bad callback, a refused login),
 * with headers that keep them from being framed, sniffed or used to leak the URL.
 */

// The page's only style, inline so the page works wherever the BFF is mounted (no static files
// needed). The CSP allows exactly this text by hash: no 'unsafe-inline', and no script at all.
const PAGE_STYLE =
  'body{font:16px/1.5 system-ui,sans-serif;color:#1f2933;background:#f3f5f8;margin:0}' +
  'main{max-width:36rem;margin:4rem auto;padding:1.5rem 2rem;background:#fff;' +
  'border:1px solid #e4e7eb;border-radius:10px}' +
  'h1{font-size:1.4rem;margin:0 0 .75rem}p{margin:0 0 1rem}' +
  '.actions{display:flex;flex-wrap:wrap;gap:.5rem}' +
  '.actions a{padding:.5rem 1rem;border:1px solid #0b5fff;border-radius:6px;text-decoration:none}' +
  '.actions a.primary{background:#0b5fff;color:#fff}.actions a.secondary{color:#0b5fff}' +
  '.code{color:#61707f;font-size:.875rem;margin:1rem 0 0}'
/** base64 SHA-256 of PAGE_STYLE; test/core/pages.test.ts keeps the two in step. */
const PAGE_STYLE_HASH = 'sha256-LqMTyr5l9GIIl6aj3wTgcRsZvgEnhwdbo12ORqCY/wo='

export const PAGE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': `default-src 'none'; style-src '${PAGE_STYLE_HASH}'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
}

/**
 * Headers for the SPA's own files, on Node and Workers alike: the error pages' protections, but a
 * CSP that lets the SPA load its scripts and styles from its origin, and caching left to the files.
 */
export const SPA_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    Object.entries(PAGE_SECURITY_HEADERS).filter(
      ([name]) => name !== 'Content-Security-Policy' && name !== 'Cache-Control'
    )
  ),
  'Content-Security-Policy':
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}

/** A way on from an error page; the first one a page offers is drawn as its main action. */
export interface PageLink {
  /** A same-origin path. @example '/bff/login' */
  href: string
  label: string
}

export const START_PAGE: PageLink = { href: '/', label: 'Go to the start page' }

const LOG_IN: PageLink = { href: '/bff/login', label: 'Log in' }
const LOG_IN_AGAIN: PageLink = { href: '/bff/login', label: 'Log in again' }
// Failures of the login itself: trying the login again is the way on.
const LOGIN_CODES = new Set(['invalid_callback', 'login_failed', 'step_up_failed'])

export interface ErrorPageText {
  title: string
  /** Replaces the error's message, which speaks to a developer calling the API. */
  message?: string
  links: PageLink[]
}

/** What the page for an error says and where it leads: the ways on that fit the cause. */
export function pageForError(status: number, code: string): ErrorPageText {
  if (code === 'csrf') {
    // Someone opened an API address in the address bar: logging in again changes nothing.
    return {
      title: 'This address is for the app',
      message: 'The app calls this address in the background; it is not a page to open.',
      links: [{ href: '/', label: "Go to the app's start page" }],
    }
  }
  const again = LOGIN_CODES.has(code) ? [LOG_IN_AGAIN, START_PAGE] : [START_PAGE]
  if (status === 401) return { title: 'Please log in', links: [LOG_IN, START_PAGE] }
  if (status === 403) return { title: 'Not allowed', links: again }
  if (status === 404) return { title: 'Not found', links: [START_PAGE] }
  if (status === 405) return { title: 'Not possible here', links: [START_PAGE] }
  if (status >= 500) return { title: 'The service is having trouble', links: [START_PAGE] }
  return { title: 'That did not work', links: again }
}

export function errorPage(
  title: string,
  message: string,
  status: number,
  links: readonly PageLink[] = [START_PAGE]
): string {
  const actions = links
    .map(
      (link, i) =>
        `<a class="${i === 0 ? 'primary' : 'secondary'}" href="${escapeHtml(link.href)}">${escapeHtml(link.label)}</a>`
    )
    .join(' ')
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${PAGE_STYLE}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(message)}</p>
<p class="actions">${actions}</p>
<p class="code">Error ${status}</p>
</main>
</body>
</html>`
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)
}
