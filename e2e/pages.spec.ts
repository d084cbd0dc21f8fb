import type { APIResponse, Response } from '@playwright/test'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { expect, test, uniqueUser } from './fixtures.ts'
import { logIn, openApp, signInAtIdp } from './spa.ts'

function expectPageHeaders(res: Response | APIResponse | null) {
  const headers = res!.headers()
  const csp = headers['content-security-policy'] ?? ''
  expect(csp).toContain("frame-ancestors 'none'")
  expect(csp).toMatch(/default-src '(none|self)'/)
  expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/)
  expect(headers['x-content-type-options']).toBe('nosniff')
}

test('a forged or replayed callback gets a readable error page', async ({ page, stack, watch }) => {
  const forged = await page.goto('/bff/callback?state=forged&code=forged')
  expect(forged!.status()).toBe(400)
  expectPageHeaders(forged)
  await expect(page.getByRole('heading', { name: 'That did not work' })).toBeVisible()
  await expect(page.getByText('This login link is invalid or was already used.')).toBeVisible()
  await expect(page.getByRole('link', { name: 'Log in again' })).toHaveAttribute(
    'href',
    '/bff/login'
  )

  const user = uniqueUser('grace')
  await logIn(page, stack, user)
  const callback = watch.requests.find((url) => url.startsWith(`${stack.url}/bff/callback?`))!
  const replayed = await page.goto(callback)
  expect(replayed!.status()).toBe(400)
  await expect(page.getByText('This login link is invalid or was already used.')).toBeVisible()
  // The replay neither ended nor replaced the session it tried to reuse.
  expect(await openApp(page)).toBe('logged-in')
  await expect(page.getByRole('status')).toHaveText(`Logged in as ${user}.`)
})

test('cancelling at the IdP shows the login error page', async ({ page, stack }) => {
  expect(await openApp(page)).toBe('logged-out')
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.waitForURL(`${stack.idp.issuer}/interaction/**`)
  const errorPage = page.waitForResponse((res) => res.url().startsWith(`${stack.url}/bff/callback`))
  await page.getByRole('link', { name: 'Cancel' }).click()
  expect((await errorPage).status()).toBe(400)
  expectPageHeaders(await errorPage)
  await expect(page.getByRole('heading', { name: 'That did not work' })).toBeVisible()
  await expect(page.getByText('The identity provider did not complete the login.')).toBeVisible()

  // The way out works: "Log in again" starts a fresh login.
  await page.getByRole('link', { name: 'Log in again' }).click()
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible()
})

test('the app, its assets and the post-logout page send strict security headers', async ({
  page,
  request,
}) => {
  for (const path of ['/', '/app.js', '/app.css', '/logged-out.html']) {
    const res = await request.get(path)
    expect(res.status(), path).toBe(200)
    expectPageHeaders(res)
  }
  expectPageHeaders(await page.goto('/logged-out.html'))
  await expect(page.getByRole('heading', { name: 'You are logged out' })).toBeVisible()
  // The icon a browser asks for by itself is there too.
  const icon = await request.get('/favicon.ico')
  expect(icon.status()).toBe(200)
  // Node names the type image/x-icon, Cloudflare's assets the registered one.
  expect(icon.headers()['content-type']).toMatch(/^image\/(x-icon|vnd\.microsoft\.icon)$/)
  expect((await request.get('/favicon.svg')).status()).toBe(200)
})

test("the IdP's pages name the app, never the IdP's address", async ({ page, stack }) => {
  expect(await openApp(page)).toBe('logged-out')
  await page.getByRole('button', { name: 'Log in' }).click()
  await page.waitForURL(`${stack.idp.issuer}/interaction/**`)
  await expect(page.getByText('Sign in to continue to Demo App')).toBeVisible()
  expect(await page.locator('body').innerText()).not.toContain('127.0.0.1')

  await signInAtIdp(page, stack, uniqueUser('heidi'))
  await expect(page.getByRole('status')).toHaveText(/^Logged in as /)
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.waitForURL(`${stack.endSessionEndpoint}**`)
  await expect(page.getByRole('heading', { name: 'Sign out of Demo App?' })).toBeVisible()
  expect(await page.locator('body').innerText()).not.toContain('127.0.0.1')
  await page.getByRole('button', { name: 'Yes, sign me out' }).click()
  await expect(page.getByRole('heading', { name: 'You are logged out' })).toBeVisible()
})

test('another site cannot frame the app', async ({ page, stack, watch }) => {
  watch.allowCspViolation(/frame-ancestors/)
  // A real server on another loopback origin: Chromium's local-network checks refuse to let a
  // public (or intercepted) page frame localhost at all, which would prove nothing about the CSP.
  const framing = createServer((_req, res) => {
    res.setHeader('content-type', 'text/html')
    res.end(`<!doctype html><title>framing</title><iframe src="${stack.url}/"></iframe>`)
  })
  await new Promise<void>((resolve) => framing.listen(0, '127.0.0.1', resolve))
  try {
    const { port } = framing.address() as AddressInfo
    await page.goto(`http://127.0.0.1:${port}/`)
    await expect
      .poll(() => watch.cspViolations.map((v) => v.text).join('\n'))
      .toMatch(/Framing '.+' violates .*frame-ancestors 'none'/)
    expect(page.frames().filter((frame) => frame.url().startsWith(stack.url))).toEqual([])
  } finally {
    framing.closeAllConnections()
    await new Promise((resolve) => framing.close(resolve))
  }
})
