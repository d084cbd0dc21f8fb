import { expect, test, uniqueUser } from './fixtures.ts'
import { callApi, logIn, openApp } from './spa.ts'

test('two tabs share one session; logging out in one shows the other logged out within a second', async ({
  context,
  page,
  stack,
  watch,
}) => {
  await logIn(page, stack, uniqueUser('dave'))
  const second = await context.newPage()
  const firstRequest = watch.requests.length
  expect(await openApp(second)).toBe('logged-in')
  expect((await callApi(second)).status).toBe(200)
  const atIdp = watch.requests.slice(firstRequest).filter((url) => url.startsWith(stack.idp.issuer))
  expect(atIdp, 'the second tab needed no trip to the IdP').toEqual([])

  // The second tab learns it without doing anything: from the first tab (BroadcastChannel) and
  // from the BFF's event stream.
  const clicked = Date.now()
  await page.getByRole('button', { name: 'Log out' }).click()
  await expect(second.getByRole('status')).toHaveText(/session has ended/, { timeout: 1000 })
  console.log(`e2e ${stack.target}: logout -> other tab logged out in ${Date.now() - clicked} ms`)
  await expect(second.getByRole('button', { name: 'Log in again' })).toBeVisible()
  await expect(second.getByRole('button', { name: 'Call the API' })).toBeHidden()

  await page.waitForURL(`${stack.endSessionEndpoint}**`)
  await page.getByRole('button', { name: 'Yes, sign me out' }).click()
  await expect(page.getByRole('heading', { name: 'You are logged out' })).toBeVisible()
  // The IdP hands back the random `state` the BFF sent with the logout (OIDC RP-Initiated Logout).
  await expect(page).toHaveURL(/[?&]state=[\w-]{20,}$/)
  const landing = new URL(page.url())
  expect(`${landing.origin}${landing.pathname}`).toBe(stack.postLogoutUrl)
  // The session is gone at the BFF too, not only in the page.
  const user = await second.evaluate(async () => {
    const res = await fetch('/bff/user', { headers: { 'X-CSRF': '1' } })
    return { status: res.status, body: await res.json() }
  })
  expect(user).toMatchObject({ status: 401, body: { error: 'unauthenticated' } })
})

test('a logout at the IdP reaches the BFF over the back channel and ends the browser session', async ({
  context,
  page,
  stack,
}) => {
  await logIn(page, stack, uniqueUser('erin'))
  expect((await callApi(page)).status).toBe(200)
  const before = { ...stack.idp.backchannel }

  // The user signs out at the IdP itself (from another app, say), never touching the BFF: only the
  // IdP's logout token, POSTed to /bff/backchannel, can tell the BFF.
  const idpTab = await context.newPage()
  await idpTab.goto(stack.endSessionEndpoint)
  await idpTab.getByRole('button', { name: 'Yes, sign me out' }).click()
  await expect(idpTab.getByRole('heading', { name: 'Signed out' })).toBeVisible()
  await expect
    .poll(() => stack.idp.backchannel.success + stack.idp.backchannel.error)
    .toBeGreaterThan(before.success + before.error)
  expect(stack.idp.backchannel, 'back-channel deliveries (success, error)').toEqual({
    success: before.success + 1,
    error: before.error,
  })

  // The app's tab is told by the BFF's event stream, without a click or a call of its own.
  const delivered = Date.now()
  await expect(page.getByRole('status')).toHaveText(/signed out at the identity provider/, {
    timeout: 1000,
  })
  console.log(`e2e ${stack.target}: back-channel -> tab logged out in ${Date.now() - delivered} ms`)
  await expect(page.getByRole('button', { name: 'Log in again' })).toBeVisible()
})
