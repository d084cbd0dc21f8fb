/**
 * Playwright fixtures: one stack (IdP, demo API, BFF) per Playwright worker process, and a watch
 * on every test's browser context that fails the test when a token reaches the browser, a page
 * breaks its CSP or throws. The watch runs for every test, so each flow is also a leak test.
 */
import { test as base, expect, type BrowserContext } from '@playwright/test'
import { startStack, type Stack, type StackIdps, type Target } from './stack.ts'

export { expect }

export interface E2eOptions {
  /** Which runtime serves the BFF; set per Playwright project. */
  target: Target
  /**
   * One IdP from the settings, or the demo's two from its config file: a spec picks with
   * `test.use({ idps: 'demo' })` (and gets a stack, so a worker, of its own).
   */
  idps: StackIdps
}

export const test = base.extend<{ watch: BrowserWatch }, E2eOptions & { stack: Stack }>({
  target: ['node', { option: true, scope: 'worker' }],
  idps: ['env', { option: true, scope: 'worker' }],
  stack: [
    async ({ target, idps }, use) => {
      const stack = await startStack(target, idps)
      await use(stack)
      await stack.close()
    },
    { scope: 'worker', timeout: 60_000 },
  ],
  baseURL: async ({ stack }, use) => use(stack.url),
  watch: [
    async ({ context, stack }, use, testInfo) => {
      const firstLog = stack.logs.length
      const watch = watchBrowser(context, stack)
      await use(watch)
      let clean = false
      try {
        await watch.verify()
        clean = true
      } finally {
        if (!clean || testInfo.status !== testInfo.expectedStatus) {
          await testInfo.attach('bff-log', { body: stack.logs.slice(firstLog).join('\n') })
        }
      }
    },
    { auto: true },
  ],
})

export interface BrowserWatch {
  /** Every URL the browser requested, in order. */
  readonly requests: string[]
  /** Console messages that report a Content Security Policy violation, on any page. */
  readonly cspViolations: Array<{ pageUrl: string; text: string }>
  /** Expect these CSP reports (e.g. a test that frames the app on purpose); others still fail. */
  allowCspViolation(pattern: RegExp): void
  /** Waits for pending response bodies, then fails on token leaks, page errors and CSP reports. */
  verify(): Promise<void>
}

interface Seen {
  where: string
  text: string
}

function watchBrowser(context: BrowserContext, stack: Stack): BrowserWatch {
  const seen: Seen[] = []
  const pending: Array<Promise<unknown>> = []
  const requests: string[] = []
  const cspViolations: Array<{ pageUrl: string; text: string }> = []
  const pageErrors: string[] = []
  const allowed: RegExp[] = []

  // Every read of the protocol is bounded: a request the page abandoned (it navigated away) may
  // never deliver its headers or body, and must not hang the check.
  const track = (what: Promise<unknown>) =>
    pending.push(
      withTimeout(
        what.catch(() => {}),
        3000
      )
    )

  context.on('request', (request) => {
    requests.push(request.url())
    seen.push({ where: `URL of ${request.method()} ${request.url()}`, text: request.url() })
    const post = request.postData()
    if (post) seen.push({ where: `body of ${request.method()} ${request.url()}`, text: post })
  })
  context.on('requestfinished', (request) => {
    track(
      request.allHeaders().then((headers) => {
        seen.push({ where: `request headers of ${request.url()}`, text: JSON.stringify(headers) })
      })
    )
  })
  context.on('response', (response) => {
    const where = `${response.status()} ${response.url()}`
    track(
      response.allHeaders().then((headers) => {
        seen.push({ where: `response headers of ${where}`, text: JSON.stringify(headers) })
      })
    )
    // Redirects have no body, and a body can be gone once its page navigated on: both are skipped.
    track(
      response.body().then((body) => {
        seen.push({ where: `body of ${where}`, text: body.toString('utf8') })
      })
    )
  })
  context.on('console', (message) => {
    if (message.type() !== 'error' || !/Content Security Policy/i.test(message.text())) return
    cspViolations.push({ pageUrl: message.page()?.url() ?? '', text: message.text() })
  })
  context.on('weberror', (error) => pageErrors.push(error.error().message))

  return {
    requests,
    cspViolations,
    allowCspViolation: (pattern) => void allowed.push(pattern),
    async verify() {
      await Promise.allSettled(pending)
      for (const page of context.pages()) {
        if (page.isClosed() || !page.url().startsWith(stack.url)) continue
        // What page JavaScript can read: cookies it may see and both web storages.
        const readable = await page.evaluate(() => ({
          cookie: document.cookie,
          localStorage: JSON.stringify({ ...localStorage }),
          sessionStorage: JSON.stringify({ ...sessionStorage }),
        }))
        for (const [name, text] of Object.entries(readable)) {
          seen.push({ where: `${name} of ${page.url()}`, text })
        }
        expect(readable.cookie, 'document.cookie must not show the session').not.toMatch(/bff/)
      }

      const leaks: string[] = []
      for (const { kind, value, issuer } of stack.tokens.all()) {
        // An ID token may go to the end-session endpoint of the IdP that issued it, no other.
        const endSession = stack.idps.find(({ idp }) => idp.issuer === issuer)!.endSessionEndpoint
        for (const { where, text } of seen) {
          if (allowedIdTokenHint(text, endSession).includes(value)) {
            leaks.push(`${kind} ${value.slice(0, 8)}… in ${where.slice(0, 160)}`)
          }
        }
      }
      expect(leaks, 'tokens seen by the browser').toEqual([])
      expect(pageErrors, 'uncaught errors in pages').toEqual([])
      const unexpected = cspViolations.filter(({ text }) => !allowed.some((re) => re.test(text)))
      expect(unexpected, 'CSP violations').toEqual([])
    },
  }
}

/**
 * OIDC RP-initiated logout sends the ID token to the IdP as `id_token_hint` in the end-session URL
 * (the BFF's logout redirect, then the Referer of the IdP's own confirmation page). That one place
 * is part of the protocol; the same ID token anywhere else, and any access or refresh token
 * anywhere at all, is a leak.
 */
function allowedIdTokenHint(text: string, endSessionEndpoint: string): string {
  if (!text.includes(endSessionEndpoint)) return text
  return text.replace(/([?&]id_token_hint=)[\w.-]+/g, '$1(allowed)')
}

function withTimeout(promise: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise((resolve) => (timer = setTimeout(resolve, ms)))
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** A login name of its own for each test, so no test sees another's IdP grant or session. */
export function uniqueUser(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
}
