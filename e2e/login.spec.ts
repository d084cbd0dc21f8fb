import { fileURLToPath } from 'node:url'
import { expect, test, uniqueUser } from './fixtures.ts'
import { callApi, logIn } from './spa.ts'

const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url))

test('logs in through the IdP pages and calls the API through the BFF', async ({
  page,
  stack,
  watch,
}) => {
  const user = uniqueUser('alice')
  const codeGrants = stack.idp.grants.authorizationCode
  await logIn(page, stack, user)

  await expect(page.getByRole('status')).toHaveText(`Logged in as ${user}.`)
  await expect(page.locator('#user-email')).toHaveText(`${user}@example.com`)
  await expect(page.getByRole('button', { name: 'Log in' })).toBeHidden()
  await expect(page.getByRole('button', { name: 'Log out' })).toBeVisible()
  expect(stack.idp.grants.authorizationCode).toBe(codeGrants + 1)
  // The browser went to the IdP and back; the token exchange happened out of its sight.
  expect(watch.requests.some((url) => url.startsWith(`${stack.idp.issuer}/token`))).toBe(false)

  const answer = await callApi(page)
  expect(answer.status).toBe(200)
  expect(answer.body).toMatchObject({ message: `Hello, ${user}!`, sub: user })
  await page.screenshot({ path: `${ARTIFACTS}logged-in-${stack.target}.png`, fullPage: true })
})

test('keeps the session out of reach of page JavaScript', async ({ page, context, stack }) => {
  await logIn(page, stack, uniqueUser('bob'))
  expect((await callApi(page)).status).toBe(200)

  const [session] = (await context.cookies(stack.url)).filter((c) => /^(__Host-)?bff$/.test(c.name))
  expect(session, 'the session cookie').toBeDefined()
  expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' })
  const readable = await page.evaluate(() => ({
    cookie: document.cookie,
    local: localStorage.length,
    session: sessionStorage.length,
  }))
  expect(readable).toEqual({ cookie: '', local: 0, session: 0 })
  // The watch then looks for every token the IdP issued in everything the browser saw or stored;
  // make sure there were tokens to look for.
  expect(stack.tokens.all().map((t) => t.kind)).toEqual(
    expect.arrayContaining(['access_token', 'refresh_token', 'id_token'])
  )
})
