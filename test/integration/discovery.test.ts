/**
 * A mistyped or misbehaving `BFF_ISSUER` shows in `/bff/health` (503, `idp: "unreachable"`, with
 * what was wrong) instead of only at the first login; a discovery document behind a same-origin
 * redirect (django-oauth-toolkit's trailing slash) is followed. Node checks at start-up and keeps
 * retrying; a Worker discovers on first use, which a health check is.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { startIdpFront, type IdpFront } from '../helpers/idp-front.ts'
import { freePort } from '../helpers/upstream.ts'
import { CSRF, startStack, type Stack, type StackOptions } from './harness.ts'

const DISCOVERY = '/.well-known/openid-configuration'

let stack: Stack | undefined
let front: IdpFront | undefined
afterEach(async () => {
  await stack?.close()
  await front?.close()
  stack = front = undefined
})

/** A stack whose IdP sits behind a front that answers discovery with `intercept`'s choice. */
async function withFront(
  intercept: IdpFront['intercept'],
  options: (front: IdpFront) => StackOptions = () => ({})
): Promise<Stack> {
  front = await startIdpFront()
  front.intercept = intercept
  stack = await startStack({ front, ...options(front) })
  return stack
}

async function health(target: Stack) {
  const response = await fetch(`${target.url}/bff/health`)
  return { status: response.status, body: await response.json() }
}

/** Health answers 503 naming the IdP as unreachable, with `problem` in its message. */
async function expectUnreachable(target: Stack, problem: RegExp) {
  const { status, body } = await health(target)
  expect(status).toBe(503)
  expect(body).toMatchObject({
    status: 'unavailable',
    store: 'cookie',
    idp: 'unreachable',
    error: 'idp_unavailable',
    idps: [{ name: 'default', status: 'unreachable' }],
  })
  expect(body.message).toMatch(problem)
  expect(body.idps[0].message).toMatch(problem)
}

describe('/bff/health reports an IdP whose discovery fails', () => {
  it('a dead port', async () => {
    const dead = await freePort()
    stack = await startStack({ env: { BFF_ISSUER: `http://127.0.0.1:${dead}` } })
    await expectUnreachable(stack, /could not connect/)
  })

  it('a wrong path (404)', async () => {
    await withFront(undefined, (f) => ({ env: { BFF_ISSUER: `${f.url}/wrong` } }))
    await expectUnreachable(stack!, /HTTP 404/)
  })

  it('HTML instead of the JSON document', async () => {
    await withFront((req, res) => {
      if (!req.url.startsWith(DISCOVERY)) return false
      res.writeHead(200, { 'content-type': 'text/html' }).end('<html>Welcome</html>')
      return true
    })
    await expectUnreachable(stack!, /not a JSON discovery document.*text\/html/)
  })

  it('a document naming another issuer (BFF_ISSUER mistyped as another name of the host)', async () => {
    await withFront(undefined, (f) => ({
      env: { BFF_ISSUER: f.url.replace('127.0.0.1', 'localhost') },
    }))
    await expectUnreachable(stack!, /names issuer "http:\/\/127\.0\.0\.1:\d+", not BFF_ISSUER/)
  })

  it('a redirect to another origin, which is refused', async () => {
    await withFront((req, res) => {
      if (!req.url.startsWith(DISCOVERY)) return false
      // localhost is another origin than 127.0.0.1, though the same machine.
      res.writeHead(301, { location: `http://localhost:${front!.port}${DISCOVERY}` }).end()
      return true
    })
    await expectUnreachable(stack!, /another origin/)
  })

  it('and reports it reachable once discovery works again, without a login', async () => {
    let down = true
    await withFront((req, res) => {
      if (!down || !req.url.startsWith(DISCOVERY)) return false
      res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>Service Unavailable</h1>')
      return true
    })
    await expectUnreachable(stack!, /HTTP 503/)
    down = false
    // Node retries in the background (1 s, 2 s, ...); health itself tries again after 5 s.
    let last = await health(stack!)
    for (let waited = 0; last.status !== 200 && waited < 60_000; waited += 500) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      last = await health(stack!)
    }
    expect(last).toEqual({
      status: 200,
      body: { status: 'ok', store: 'cookie', idp: 'ok', idps: [{ name: 'default', status: 'ok' }] },
    })
  }, 90_000)
})

describe('a discovery document behind a same-origin redirect', () => {
  it('is followed (django-oauth-toolkit answers 301 to add a trailing slash): health ok, login works', async () => {
    await withFront((req, res) => {
      if (req.url === DISCOVERY) {
        res.writeHead(301, { location: `${DISCOVERY}/` }).end()
        return true
      }
      if (req.url === `${DISCOVERY}/`) req.url = DISCOVERY // the IdP serves it without the slash
      return false
    })
    const { status, body } = await health(stack!)
    expect(status).toBe(200)
    expect(body).toEqual({
      status: 'ok',
      store: 'cookie',
      idp: 'ok',
      idps: [{ name: 'default', status: 'ok' }],
    })
    const jar = stack!.jar()
    expect((await stack!.login(jar)).status).toBe(302)
    expect((await jar.get('/bff/user', { headers: CSRF })).status).toBe(200)
    expect(front!.seen.some((req) => req.url === DISCOVERY)).toBe(true)
  })
})
