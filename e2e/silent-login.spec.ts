import { expect, test, uniqueUser } from './fixtures.ts'
import { logIn, openApp } from './spa.ts'

test('prompt=none logs the browser back in while the IdP session lives', async ({
  context,
  page,
  stack,
  watch,
}) => {
  const user = uniqueUser('frank')
  await logIn(page, stack, user)
  // The BFF session is gone (cookie lost, browser data cleared) but the IdP still knows the user.
  await context.clearCookies({ name: /^(__Host-)?bff/ })
  const codeGrants = stack.idp.grants.authorizationCode
  const firstRequest = watch.requests.length

  expect(await openApp(page)).toBe('logged-in')
  await expect(page.getByRole('status')).toHaveText(`Logged in as ${user}.`)
  expect(stack.idp.grants.authorizationCode).toBe(codeGrants + 1)
  const seen = watch.requests.slice(firstRequest).map((url) => new URL(url))
  const authorize = seen.filter((url) => url.origin === stack.idp.issuer && url.search)
  expect(authorize.map((url) => url.searchParams.get('prompt'))).toContain('none')
  const pages = seen.filter((url) => url.pathname.startsWith('/interaction/'))
  expect(pages, 'IdP pages shown').toEqual([])
  await expect(page).toHaveURL(`${stack.url}/`)
})

test('prompt=none without an IdP session lands on the signed-out page, not an error', async ({
  page,
  stack,
  watch,
}) => {
  expect(await openApp(page)).toBe('logged-out')
  expect(watch.requests).toContain(`${stack.url}/?silent=1&error=login_required`)
  // The first visit of anyone not logged in: the landing, with no error code in sight.
  await expect(page.getByRole('status')).toHaveText('You are not logged in.')
  await expect(
    page.getByRole('heading', { name: 'Sign in without a single token in the browser' })
  ).toBeVisible()
  await expect(page.getByRole('alert')).toBeHidden()
  expect(await page.locator('body').innerText()).not.toMatch(/login_required|error/i)
  const pages = watch.requests.filter((url) => url.includes('/interaction/'))
  expect(pages, 'IdP pages shown').toEqual([])
  // The address bar is tidied, and a reload does not loop through the IdP again.
  await expect(page).toHaveURL(`${stack.url}/`)
  await expect(page.getByRole('button', { name: 'Log in' })).toBeVisible()
})
