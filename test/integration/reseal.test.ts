/**
 * Re-sealing storms, from outside on each runtime: once a cookie-mode session is older than its
 * touch interval, the requests that still carry the previous cookie (a client that ignores
 * Set-Cookie, requests in flight when the cookie changed) get one new cookie: the first answer
 * carries it, those in flight meanwhile the same value (iron seals are random, salt and IV, so
 * the same value twice means it was sealed once), later ones none. test/core/session/reseals.test.ts
 * counts the seals at the sealer.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { CSRF, startStack, type Stack } from './harness.ts'

let stack: Stack
let cookie: string

beforeAll(async () => {
  // Tokens outlive the test: only the touch re-seals (a refresh would change the cookie anyway).
  stack = await startStack({ store: 'cookie', accessTokenTtl: 3600 })
  const jar = stack.jar()
  expect((await stack.login(jar, { user: 'reseal' })).status).toBe(302)
  cookie = Object.entries(jar.cookies(stack.url))
    .map(([name, value]) => `${name}=${value}`)
    .join('; ')
})

afterAll(async () => {
  await stack?.close()
})

/** A client that ignores Set-Cookie: always the login's cookie. */
async function call(path = '/api/items'): Promise<Response> {
  return fetch(`${stack.url}${path}`, { headers: { cookie, ...CSRF } })
}

/** The new session cookie's value(s) in an answer, as one string (chunks joined). */
function sessionCookie(res: Response): string {
  return res.headers
    .getSetCookie()
    .filter((line) => /^bff(\.\d+)?=/.test(line))
    .map((line) => line.slice(0, line.indexOf(';')))
    .join('; ')
}

it('answers the same stale cookie with one new cookie, sent once, however many requests carry it', async () => {
  stack.advance(120) // past the touch interval (60 s)
  const inSequence: Response[] = []
  for (let i = 0; i < 5; i++) inSequence.push(await call())
  const atOnce = await Promise.all(Array.from({ length: 10 }, () => call()))
  const answers = [...inSequence, ...atOnce]
  expect(answers.map((res) => res.status)).toEqual(answers.map(() => 200))
  // The first carries the new cookie; later ones none (their holder has it), or the same.
  expect(sessionCookie(inSequence[0]!)).not.toBe('')
  expect(inSequence.slice(1).map(sessionCookie)).toEqual(['', '', '', ''])
  const values = new Set(answers.map(sessionCookie).filter(Boolean))
  expect(values.size).toBe(1)
  const [fresh] = [...values]
  expect(fresh).toMatch(/^bff=Fe26\.2\*/)
  // The new cookie works too.
  const res = await fetch(`${stack.url}/bff/user`, { headers: { cookie: fresh!, ...CSRF } })
  expect(res.status).toBe(200)
})

it('keeps a client that ignores Set-Cookie working as the session slides on', async () => {
  for (let minute = 0; minute < 5; minute++) {
    stack.advance(70)
    const res = await call()
    expect(res.status).toBe(200)
    await res.arrayBuffer()
  }
})
