import { expect, test, uniqueUser } from './fixtures.ts'
import { callApi, logIn } from './spa.ts'

test('refreshes expired access tokens on the server, with no navigation in the page', async ({
  page,
  stack,
  watch,
}) => {
  await logIn(page, stack, uniqueUser('carol'))
  expect((await callApi(page)).status).toBe(200)
  const appUrl = page.url()
  const navigations: string[] = []
  page.on('framenavigated', (frame) => navigations.push(frame.url()))
  const firstRequest = watch.requests.length

  // Twice: the second refresh spends the rotated refresh token the first one left in the cookie.
  for (let round = 1; round <= 2; round++) {
    const held = stack.tokens.last()!
    const refreshes = stack.idp.grants.refresh
    // Wait out the token the BFF holds, for real: the IdP's clock decides, not the BFF's.
    await page.waitForTimeout(held.accessTokenExpiresAt * 1000 - Date.now() + 300)

    const answer = await callApi(page)
    expect(answer.status, `call after expiry ${round}`).toBe(200)
    expect(stack.idp.grants.refresh, `refresh grants after round ${round}`).toBe(refreshes + 1)
    const fresh = stack.tokens.last()!
    expect(fresh.grantType).toBe('refresh_token')
    expect(fresh.accessToken).not.toBe(held.accessToken)
  }

  expect(navigations, 'navigations during the refreshes').toEqual([])
  expect(page.url()).toBe(appUrl)
  // The page only ever talked to its own origin; the refresh grants were the BFF's business.
  const seen = watch.requests.slice(firstRequest).map((url) => new URL(url))
  expect(seen.map((url) => url.origin + url.pathname)).toEqual([
    `${stack.url}/api/hello`,
    `${stack.url}/api/hello`,
  ])
})
