import { DEMO_USER } from '../src/demo/idp.ts'
import { expect, test } from './fixtures.ts'
import { callApi, logIn, logOut, openApp } from './spa.ts'

// The demo as `npm start` runs it: Corp (roles in realm_access.roles) and Partner (in groups).
test.use({ idps: 'demo' })
// Two whole rounds of login, API call and logout (about 40 s in workerd on a busy 2-core machine).
test.setTimeout(120_000)

test('offers each IdP, logs in at Corp and at Partner, and shows the same roles from both', async ({
  page,
  stack,
  watch,
}) => {
  const [corp, partner] = stack.idps
  expect([corp?.name, partner?.name]).toEqual(['corp', 'partner'])

  expect(await openApp(page)).toBe('logged-out')
  await expect(page.getByRole('button', { name: 'Log in with Corp', exact: true })).toBeVisible()
  await expect(page.getByRole('button', { name: 'Log in with Partner', exact: true })).toBeVisible()
  await expect(page.getByRole('button', { name: 'Log in', exact: true })).toBeHidden()

  for (const idp of [corp!, partner!]) {
    const firstRequest = watch.requests.length
    await logIn(page, stack, DEMO_USER.login, idp)
    await expect(page.getByRole('status')).toHaveText('Logged in as Demo User.')
    await expect(page.locator('#user-idp')).toHaveText(`${idp.label} (${idp.name})`)
    await expect(page.locator('#user-roles')).toHaveText('admin')

    // The login went to this IdP, and came back to its own callback.
    const authorize = watch.requests
      .slice(firstRequest)
      .map((url) => new URL(url))
      .find((url) => url.pathname === '/auth' && url.searchParams.has('redirect_uri'))
    expect(authorize?.origin).toBe(idp.idp.issuer)
    expect(authorize?.searchParams.get('redirect_uri')).toBe(
      `${stack.url}/bff/callback/${idp.name}`
    )

    // Its access token reaches the demo API, which says which IdP vouched for it.
    const answer = await callApi(page)
    expect(answer).toMatchObject({ status: 200, body: { sub: 'demo', iss: idp.idp.issuer } })

    await logOut(page, stack, idp)
  }
  // Logged out at both: the silent login (at the first IdP) finds no session either.
  expect(await openApp(page)).toBe('logged-out')
})
