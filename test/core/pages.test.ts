import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { errorPage, PAGE_SECURITY_HEADERS } from '../../src/core/pages.ts'

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
