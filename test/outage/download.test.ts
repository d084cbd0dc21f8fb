/**
 * Large downloads through the Node BFF in a process of its own, so its memory is measured alone
 * and a hung server fails the test instead of the test runner: a 50 MB chunked answer read slowly
 * must not grow the BFF by more than 100 MB, a 100 MB one read as fast as it comes arrives
 * intact, and the BFF answers other calls all the while.
 */
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp, type Idp } from '../../src/demo/idp.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import {
  downloadSha256,
  readDigest,
  startStreamUpstream,
  type StreamUpstream,
} from '../helpers/stream-upstream.ts'
import { freePort } from '../helpers/upstream.ts'
import { startBff, type BffChild } from './soak.ts'

const MB = 1024 * 1024
const CSRF = { 'x-csrf': '1' }

let idp: Idp
let files: StreamUpstream
let bff: BffChild
let jar: CookieJar

beforeAll(async () => {
  idp = await startIdp({ clients: [] })
  files = await startStreamUpstream()
  const url = `http://127.0.0.1:${await freePort()}`
  await idp.addClient(bffClientMetadata({ redirectUris: [`${url}/bff/callback`] }))
  bff = await startBff({
    PORT: new URL(url).port,
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: url,
    BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
    BFF_API: `/files/=${files.url}/`,
  })
  jar = createCookieJar({ baseUrl: url })
  const start = await jar.get('/bff/login?returnTo=/')
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
    login: 'alice',
    password: 'pass',
  })
  expect((await jar.follow(atIdp)).status).toBe(302)
}, 60_000)

afterAll(async () => {
  await bff?.stop()
  await files?.close()
  await idp?.stop()
})

/** Resident memory of the BFF's process, bytes. */
function rss(): number {
  const status = readFileSync(`/proc/${bff.pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024
}

async function read(path: string, pauseEveryMs = 0) {
  // A server that hangs fails here, not by stalling the runner.
  const response = await jar.get(path, { headers: CSRF, signal: AbortSignal.timeout(45_000) })
  expect(response.status).toBe(200)
  return readDigest(response, pauseEveryMs)
}

it('streams 50 MB to a slow reader in bounded memory, answering other calls meanwhile', async () => {
  await read(`/files/download?size=${MB}`)
  const before = rss()
  let peak = before
  const sampler = setInterval(() => (peak = Math.max(peak, rss())), 50)
  const others: number[] = []
  const caller = setInterval(() => {
    void jar.get('/bff/user', { headers: CSRF, signal: AbortSignal.timeout(5000) }).then(
      (response) => others.push(response.status),
      () => others.push(0)
    )
  }, 250)
  try {
    // About 64 KiB every 3 ms at most: some 15 MB/s, far slower than loopback.
    expect(await read(`/files/download?size=${50 * MB}`, 3)).toEqual({
      bytes: 50 * MB,
      sha256: downloadSha256(50 * MB),
    })
  } finally {
    clearInterval(sampler)
    clearInterval(caller)
  }
  console.log(`BFF RSS during a 50 MB slow download: +${((peak - before) / MB).toFixed(1)} MB`)
  expect(peak - before).toBeLessThan(100 * MB)
  expect(others.length).toBeGreaterThan(3)
  expect(others.every((status) => status === 200)).toBe(true)
}, 90_000)

it('streams 100 MB to a fast reader intact', async () => {
  expect(await read(`/files/download?size=${100 * MB}`)).toEqual({
    bytes: 100 * MB,
    sha256: downloadSha256(100 * MB),
  })
}, 90_000)
