import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { errorPage, pageForError, PAGE_SECURITY_HEADERS } from '../../src/core/pages.ts'

describe('error pages', () => {
  it('allow their inline style by hash and nothing inline beyond it', () => {
    const html = errorPage('That did not work', 'Try again.', 400)
    const styles = [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1]!)
    expect(styles).toHaveLength(1)
    const hash = createHash('sha256').update(styles[0]!).digest('base64')
    const csp = PAGE_SECURITY_HEADERS['Content-Security-Policy']!
    expect(csp).toContain(`style-src 'sha256-${hash}'`)
    expect(csp).not.toContain('unsafe-inline')
    expect(csp).toContain("frame-ancestors 'none'")
    expect(html).not.toMatch(/<script|\sstyle=|\son\w+=/i)
  })

  it('escape the title and message', () => {
    const html = errorPage('<b>x</b>', '"quoted" & <script>', 400)
    expect(html).not.toContain('<b>')
    expect(html).not.toContain('<script>')
    expect(html).toContain('&#34;quoted&#34; &#38; &#60;script&#62;')
  })
})

describe('the page for an error fits its cause', () => {
  const links = (status: number, code: string) =>
    pageForError(status, code).links.map((link) => `${link.label} -> ${link.href}`)

  it('csrf: an API address opened in the address bar leads to the app, not to a login', () => {
    const page = pageForError(403, 'csrf')
    expect(page.title).toBe('This address is for the app')
    expect(page.message).toMatch(/not a page to open/)
    expect(links(403, 'csrf')).toEqual(["Go to the app's start page -> /"])
  })

  it('401: please log in, with the login link first', () => {
    for (const code of ['unauthenticated', 'session_expired']) {
      expect(pageForError(401, code).title).toBe('Please log in')
      expect(links(401, code)).toEqual(['Log in -> /bff/login', 'Go to the start page -> /'])
    }
  })

  it('403, 404, 405 and 5xx: their own titles, and no login offered', () => {
    expect(pageForError(403, 'forbidden').title).toBe('Not allowed')
    expect(pageForError(404, 'not_found').title).toBe('Not found')
    expect(pageForError(405, 'method_not_allowed').title).toBe('Not possible here')
    for (const [status, code] of [
      [500, 'internal_error'],
      [502, 'upstream_unavailable'],
      [503, 'idp_unavailable'],
      [504, 'idp_timeout'],
    ] as const) {
      expect(pageForError(status, code).title).toBe('The service is having trouble')
    }
    for (const [status, code] of [
      [403, 'forbidden'],
      [404, 'not_found'],
      [405, 'method_not_allowed'],
      [503, 'idp_unavailable'],
      [400, 'invalid_path'],
    ] as const) {
      expect(links(status, code), `${status} ${code}`).toEqual(['Go to the start page -> /'])
    }
  })

  it('a failed login offers to log in again', () => {
    for (const [status, code] of [
      [400, 'invalid_callback'],
      [400, 'login_failed'],
      [403, 'step_up_failed'],
    ] as const) {
      expect(pageForError(status, code).title).toBe(
        status === 400 ? 'That did not work' : 'Not allowed'
      )
      expect(links(status, code)).toEqual([
        'Log in again -> /bff/login',
        'Go to the start page -> /',
      ])
    }
  })

  it('renders the links, the first as the main action, escaped', () => {
    const html = errorPage('T', 'M', 404, [
      { href: '/a?x=1&y=2', label: 'First' },
      { href: '/', label: '<b>Second</b>' },
    ])
    expect(html).toContain('<a class="primary" href="/a?x=1&#38;y=2">First</a>')
    expect(html).toContain('<a class="secondary" href="/">&#60;b&#62;Second&#60;/b&#62;</a>')
    expect(html).not.toContain('/bff/login')
  })
})
