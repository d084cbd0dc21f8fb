/**
 * The demo SPA's live connections: the WebSocket feed (the demo config's `/live/` route, relayed by
 * the BFF with the session's token) and the SSE ticker (`/api/ticker`), and how both end with the
 * session: a logout in one tab closes the other tab's socket (1008) and ends its stream.
 */
import { fileURLToPath } from 'node:url'
import type { Page } from '@playwright/test'
import { DEMO_USER } from '../src/demo/idp.ts'
import { expect, test } from './fixtures.ts'
import { logIn, openApp } from './spa.ts'

const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url))

// The demo as `npm start` runs it: its config file has the `/live/` WebSocket route.
test.use({ idps: 'demo' })
test.setTimeout(60_000)

const feedState = (page: Page) => page.locator('#feed-state')
const feedLog = (page: Page) => page.getByRole('list', { name: 'Feed messages' })
const tickerState = (page: Page) => page.locator('#ticker-state')
const tickerLog = (page: Page) => page.getByRole('list', { name: 'Ticker events' })

test('the live feed comes through the BFF, echoes, and the ticker streams an event a second', async ({
  page,
  stack,
}) => {
  await logIn(page, stack, DEMO_USER.login)

  // The feed opens by itself; its first message comes at once, with the user the API read from
  // the token the BFF put on the upgrade.
  await expect(feedState(page)).toHaveText('Open: a message a second from the demo API.')
  await expect(feedLog(page).getByRole('listitem').first()).toHaveText(/^#\d+ tick for demo · /)
  await expect(feedLog(page).getByText(/^#2 tick for demo/)).toBeVisible({ timeout: 3000 })
  await page.getByLabel('Message to the feed').fill('hello through the BFF')
  await page.getByRole('button', { name: 'Send' }).click()
  await expect(feedLog(page).getByText('echo for demo: hello through the BFF')).toBeVisible()

  // The ticker: Server-Sent Events through /api/ with X-CSRF, each event shown as it comes.
  await page.getByRole('button', { name: 'Start the ticker' }).click()
  await expect(tickerLog(page).getByText(/^#1 tick for demo · /)).toBeVisible()
  await expect(tickerLog(page).getByText(/^#2 tick for demo · /)).toBeVisible({ timeout: 3000 })
  await expect(tickerState(page)).toHaveText(/^Running: \d+ events so far\.$/)
  await page.screenshot({ path: `${ARTIFACTS}live-${stack.target}.png`, fullPage: true })
  await page.getByRole('button', { name: 'Stop the ticker' }).click()
  await expect(tickerState(page)).toHaveText(/^Stopped after \d+ events\.$/)
  // The feed is still open: the ticker had a connection of its own.
  await expect(feedState(page)).toHaveText(/^Open/)
})

test('two tabs with the feed open: a logout in one closes the other’s socket (1008) and ends its ticker within a second', async ({
  context,
  page,
  stack,
}) => {
  await logIn(page, stack, DEMO_USER.login)
  const second = await context.newPage()
  expect(await openApp(second)).toBe('logged-in')
  for (const tab of [page, second]) await expect(feedState(tab)).toHaveText(/^Open/)
  await second.getByRole('button', { name: 'Start the ticker' }).click()
  await expect(tickerState(second)).toHaveText(/^Running/)

  const clicked = Date.now()
  await page.getByRole('button', { name: 'Log out' }).click()
  // The BFF closed the socket: the page shows the code and reason the BFF sent.
  await expect(feedState(second)).toHaveText('Logged out. closed: session_ended:logout (1008)', {
    timeout: 1000,
  })
  const closedIn = Date.now() - clicked
  // ... and ended the ticker's stream (it need not wait for the page to stop reading).
  await expect(tickerState(second)).toHaveText(
    /^Logged out\. Ended after \d+ events?: the stream ended\.$/,
    {
      timeout: 1000,
    }
  )
  console.log(
    `e2e ${stack.target}: logout -> other tab's feed closed (1008) in ${closedIn} ms, ticker ended in ${Date.now() - clicked} ms`
  )
  await expect(second.getByRole('status')).toHaveText(/session has ended/)
  await expect(second.getByRole('button', { name: 'Log in again with Corp' })).toBeVisible()
  await expect(second.getByRole('button', { name: 'Reconnect' })).toBeHidden()
  await expect(second.getByRole('button', { name: 'Start the ticker' })).toBeHidden()
  await second.screenshot({
    path: `${ARTIFACTS}live-logged-out-${stack.target}.png`,
    fullPage: true,
  })

  // A socket opened now, without the session, is refused by the BFF (401): no feed.
  const refused = await second.evaluate(
    () =>
      new Promise<{ opened: boolean; code: number }>((resolve) => {
        const ws = new WebSocket(new URL('/live/feed', location.href.replace(/^http/, 'ws')))
        let opened = false
        ws.onopen = () => (opened = true)
        ws.onclose = (event) => resolve({ opened, code: event.code })
      })
  )
  expect(refused).toEqual({ opened: false, code: 1006 })
})
