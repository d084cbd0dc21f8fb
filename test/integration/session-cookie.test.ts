/**
 * The server stores' session cookie from outside, on each runtime: the compact
 * `<id>.<exp>.<grace>.<mac>` form (77 bytes) at login, an old sealed id cookie still answered and written again in the compact
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

  it('is the session id, its expiry and grace, and a MAC: 77 bytes', async () => {
    expect(value).toMatch(/^[\w-]{43}\.[0-9a-z]{6}\.[0-9a-z]+F?\.[\w-]{22}$/)
    expect(value.length).toBe(77)
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
    const written = line.slice(4, line.indexOf(';'))
    expect(written.split('.')[0]).toBe(id)
    expect(written.length).toBe(77)
    expect((await user(written)).status).toBe(200)
  })

  it("refuses a live session's id with a made-up MAC", async () => {
    const id = value.split('.')[0]!
    const [, exp, grace, mac] = value.split('.')
    for (const forged of [
      `${id}.${exp}.${grace}.${randomId(16)}`,
      id,
      `${randomId()}.${exp}.${grace}.${mac}`,
      `${id}.${(parseInt(exp!, 36) + 86_400).toString(36)}.${grace}.${mac}`,
    ]) {
      const res = await user(forged)
      expect(res.status).toBe(401)
    }
    expect((await user(value)).status).toBe(200)
  })
})
