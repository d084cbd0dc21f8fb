import { expect, test, uniqueUser } from './fixtures.ts'
import { callApi, logIn, logOut, openApp } from './spa.ts'

test('two tabs share one session; logging out in one ends it in the other', async ({
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

  await logOut(page, stack)
  // The IdP hands back the random `state` the BFF sent with the logout (OIDC RP-Initiated Logout).
  await expect(page).toHaveURL(/[?&]state=[\w-]{20,}$/)
  const landing = new URL(page.url())
  expect(`${landing.origin}${landing.pathname}`).toBe(stack.postLogoutUrl)

  const answer = await callApi(second)
  expect(answer).toMatchObject({ status: 401, body: { error: 'unauthenticated' } })
  await expect(second.getByRole('status')).toHaveText(/session has ended/)
  await expect(second.getByRole('button', { name: 'Log in again' })).toBeVisible()
  await expect(second.getByRole('button', { name: 'Call the API' })).toBeHidden()
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

  const answer = await callApi(page)
  expect(answer.status).toBe(401)
  await expect(page.getByRole('button', { name: 'Log in again' })).toBeVisible()
})
