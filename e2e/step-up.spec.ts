import { MFA_CODE } from '../src/demo/idp-mfa.ts'
import { expect, test, uniqueUser } from './fixtures.ts'
import { enterCodeAtIdp, logIn } from './spa.ts'

test('steps up to a second factor for the admin area and comes back to make the call', async ({
  page,
  stack,
  watch,
}) => {
  const user = uniqueUser('sam')
  await logIn(page, stack, user)
  const firstRequest = watch.requests.length

  // The demo API's admin area wants acr "mfa": its RFC 9470 challenge reaches the SPA as
  // step_up_required, and the SPA follows loginUrl to the IdP.
  const refused = page.waitForResponse((res) => new URL(res.url()).pathname === '/api/admin/')
  await page.getByRole('button', { name: 'Open the admin area' }).click()
  expect((await refused).status()).toBe(401)
  await page.waitForURL(`${stack.idp.issuer}/interaction/**`)
  const authorize = watch.requests
    .slice(firstRequest)
    .map((url) => new URL(url))
    .find((url) => url.origin === stack.idp.issuer && url.searchParams.has('acr_values'))
  expect(authorize?.searchParams.get('acr_values')).toBe('mfa')

  // Signed in at the IdP already: only the code is asked for, and it is shown on the page.
  await expect(page.getByLabel('Password', { exact: true })).toBeHidden()
  await expect(page.getByText(MFA_CODE, { exact: true })).toBeVisible()
  await enterCodeAtIdp(page, stack, '000000')
  await expect(page.getByRole('alert')).toHaveText('That code is not right. Please try again.')
  await enterCodeAtIdp(page, stack, MFA_CODE)

  // Back where the user was, the call made again, now with the second factor behind the token.
  await page.waitForURL(`${stack.url}/**`)
  await expect(page.getByRole('status')).toHaveText(`Logged in as ${user}.`)
  await expect(page.locator('#api-request')).toHaveText('GET /api/admin/')
  await expect(page.locator('#api-status')).toHaveText('200')
  const body = JSON.parse((await page.getByLabel('API response body').textContent()) ?? 'null')
  expect(body).toMatchObject({ sub: user, acr: 'mfa' })
  // The address bar carries no leftover of the round trip.
  await expect(page).toHaveURL(`${stack.url}/`)
  await expect(page.getByRole('alert')).toBeHidden()
})
