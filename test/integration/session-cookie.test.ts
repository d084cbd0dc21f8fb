/**
 * The server stores' session cookie from outside, on each runtime: the compact `<id>.<mac>` form
 * (66 bytes) at login, an old sealed id cookie still answered and written again in the compact
 * form, a forged id (a live session's id with a made-up MAC, as a store dump would give it)
 * refused.
 */
import { afterAll, beforeAll, expect, it } from 'vitest'
import { createSealer } from '../../src/core/session/seal.ts'
import { randomId } from '../../src/testing/sessions.ts'
import type { CookieJar } from '../helpers/http.ts'
import { CSRF, SERVER_STORE, describeStores, startStack, type Stack } from './harness.ts'

describeStores([SERVER_STORE, 'redis'], 'the session cookie of the %s store', (store) => {
  let stack: Stack
  let value: string
  let jar: CookieJar

  beforeAll(async () => {
    stack = await startStack({ store })
    jar = stack.jar()
    expect((await stack.login(jar, { user: 'compact' })).status).toBe(302)
    value = jar.cookies(stack.url).bff!
  })
  afterAll(async () => {
    await stack?.close()
  })

  const user = (cookie: string) =>
    fetch(`${stack.url}/bff/user`, { headers: { cookie: `bff=${cookie}`, ...CSRF } })

  it('is the session id and a MAC: 66 bytes', async () => {
    expect(value).toMatch(/^[\w-]{43}\.[\w-]{22}$/)
    const session = await stack.sessionOf(jar)
    expect(session?.id).toBe(value.split('.')[0])
    expect((await user(value)).status).toBe(200)
  })

  it('answers an old sealed id cookie and writes it again in the compact form', async () => {
    const id = value.split('.')[0]!
    const legacy = await createSealer([stack.secret]).seal({ id }, 3600)
    const res = await user(legacy)
    expect(res.status).toBe(200)
    const line = res.headers.getSetCookie().find((l) => l.startsWith('bff='))!
    expect(line.slice(4, line.indexOf(';'))).toBe(value)
  })

  it("refuses a live session's id with a made-up MAC", async () => {
    const id = value.split('.')[0]!
    for (const forged of [`${id}.${randomId(16)}`, id, `${randomId()}.${value.split('.')[1]}`]) {
      const res = await user(forged)
      expect(res.status).toBe(401)
    }
    expect((await user(value)).status).toBe(200)
  })
})
