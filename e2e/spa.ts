/**
 * What a person does in the demo SPA and on the IdP's pages, as Playwright steps. Tests read as the
 * user's story; the selectors live here once.
 */
import type { Page } from '@playwright/test'
import { DEMO_USER } from '../src/demo/idp.ts'
import { expect } from './fixtures.ts'
import type { Stack, StackIdp } from './stack.ts'

/** Opens the SPA and waits until it has settled on "logged in" or "not logged in". */
export async function openApp(page: Page, path = '/'): Promise<'logged-in' | 'logged-out'> {
  await page.goto(path)
  const status = page.getByRole('status')
  // A logged-out visit first goes to the IdP with prompt=none and comes back.
  await expect(status).toHaveText(/Logged in as|not logged in|session has/, { timeout: 10_000 })
  return (await status.textContent())?.startsWith('Logged in') ? 'logged-in' : 'logged-out'
}

/**
 * Full interactive login through the IdP's login and consent pages: at `idp` with its button
 * ("Log in with Corp") when the SPA offers a choice, else with the first login button.
 */
export async function logIn(
  page: Page,
  stack: Stack,
  user: string,
  idp: StackIdp = stack.idps[0]!
): Promise<void> {
  expect(await openApp(page)).toBe('logged-out')
  const chooser = stack.idps.length > 1
  const button = chooser
    ? page.getByRole('button', { name: `Log in with ${idp.label}`, exact: true })
    : page.getByRole('button', { name: /^Log in/ }).first()
  await button.click()
  await signInAtIdp(page, stack, user, idp)
  await expect(page.getByRole('status')).toHaveText(/^Logged in as /)
}

/**
 * On the IdP's login page: credentials (`demo` signs in with its own password, anyone else with
 * `pass`), then consent if asked; ends back on the SPA.
 */
export async function signInAtIdp(
  page: Page,
  stack: Stack,
  user: string,
  idp: StackIdp = stack.idps[0]!
): Promise<void> {
  await page.waitForURL(`${idp.idp.issuer}/interaction/**`)
  await page.getByLabel('Login', { exact: true }).fill(user)
  const password = user === DEMO_USER.login ? DEMO_USER.password : 'pass'
  await page.getByLabel('Password', { exact: true }).fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  // A first login asks for consent; a later one with the grant in place goes straight back.
  const allow = page.getByRole('button', { name: 'Allow' })
  const spaStatus = page.getByRole('status')
  await expect(allow.or(spaStatus)).toBeVisible()
  if (await allow.isVisible()) await allow.click()
  await page.waitForURL(`${stack.url}/**`)
}

export interface ApiAnswer {
  status: number
  body: Record<string, unknown>
}

/** Clicks "Call the API" and returns what the SPA showed. */
export async function callApi(page: Page): Promise<ApiAnswer> {
  const answer = page.waitForResponse((res) => new URL(res.url()).pathname === '/api/hello')
  await page.getByRole('button', { name: 'Call the API' }).click()
  const status = (await answer).status()
  await expect(page.locator('#api-status')).toHaveText(String(status))
  const body = JSON.parse((await page.getByLabel('API response body').textContent()) ?? 'null')
  return { status, body }
}

/** On the IdP's one-time code page (a step-up to `mfa`): types `code` and submits it. */
export async function enterCodeAtIdp(page: Page, stack: Stack, code: string): Promise<void> {
  await page.waitForURL(`${stack.idp.issuer}/interaction/**`)
  await expect(page.getByRole('heading', { name: 'Two-step verification' })).toBeVisible()
  await page.getByLabel('One-time code', { exact: true }).fill(code)
  await page.getByRole('button', { name: 'Verify' }).click()
}

/** Clicks "Log out" and confirms at the session's IdP; ends on the post-logout page. */
export async function logOut(
  page: Page,
  stack: Stack,
  idp: StackIdp = stack.idps[0]!
): Promise<void> {
  await page.getByRole('button', { name: 'Log out' }).click()
  await page.waitForURL(`${idp.endSessionEndpoint}**`)
  await page.getByRole('button', { name: 'Yes, sign me out' }).click()
  await expect(page.getByRole('heading', { name: 'You are logged out' })).toBeVisible()
}
