/**
 * Node checks the IdP's discovery at start-up, before any login: what was wrong is logged with the
 * URL and the HTTP status, the server starts anyway and retries in the background with growing
 * delays until discovery works, and stops retrying when it closes.
 */
import { randomBytes } from 'node:crypto'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { bffClientMetadata, startIdp, type Idp } from '../src/demo/idp.ts'
import { startNode, type NodeServer } from '../src/adapters/node/server.ts'
import { captureLog, type CapturedLog } from './helpers/capture-log.ts'
import { startIdpFront, type IdpFront } from './helpers/idp-front.ts'
import { freePort } from './helpers/upstream.ts'

const DISCOVERY = '/.well-known/openid-configuration'

// Each test waits for log lines that come as fast as the machine allows: generous bounds.
vi.setConfig({ testTimeout: 60_000 })

let server: NodeServer | undefined
let idp: Idp | undefined
let front: IdpFront | undefined
afterEach(async () => {
  await server?.close()
  await idp?.stop()
  await front?.close()
  server = idp = front = undefined
})

async function start(issuer: string, logs: CapturedLog): Promise<NodeServer> {
  server = await startNode(
    {
      PORT: String(await freePort()),
      BFF_ISSUER: issuer,
      BFF_CLIENT_ID: 'bff',
      BFF_CLIENT_SECRET: 'bff-secret',
      BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
    },
    { serveStatic: false, deps: { log: logs.log } }
  )
  return server
}

/** An IdP behind a front; the front answers discovery with `intercept`'s choice. */
async function frontedIdp(intercept: IdpFront['intercept']): Promise<IdpFront> {
  front = await startIdpFront()
  front.intercept = intercept
  idp = await startIdp({
    issuer: front.url,
    clients: [bffClientMetadata({ redirectUris: ['http://127.0.0.1:1/bff/callback'] })],
  })
  front.forwardTo(idp.port)
  return front
}

/** Waits (as long as it takes, up to a generous bound) for a log line with all of `needles`. */
async function logged(logs: CapturedLog, ...needles: string[]): Promise<Record<string, unknown>> {
  for (let waited = 0; waited < 45_000; waited += 100) {
    const line = logs.lines.find((l) => needles.every((needle) => l.includes(needle)))
    if (line) return JSON.parse(line)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`no log line with ${needles.join(', ')}:\n${logs.lines.join('\n')}`)
}

const discoveryRequests = () => front!.seen.filter((req) => req.url.startsWith(DISCOVERY)).length

describe('discovery at start-up (Node)', () => {
  it('a dead port: logs the URL and the connection error, starts, and retries', async () => {
    const logs = captureLog()
    const dead = await freePort()
    await start(`http://127.0.0.1:${dead}`, logs)
    const failed = await logged(logs, 'oidc.discovery_failed')
    expect(failed).toMatchObject({
      level: 'error',
      url: `http://127.0.0.1:${dead}${DISCOVERY}`,
    })
    expect(failed.message).toMatch(/could not connect \(ECONNREFUSED\)/)
    expect(await logged(logs, 'oidc.discovery_retry')).toMatchObject({ inSeconds: 1 })
  })

  it('a wrong path: logs the status', async () => {
    const logs = captureLog()
    await frontedIdp(undefined)
    await start(`${front!.url}/wrong`, logs)
    const failed = await logged(logs, 'oidc.discovery_failed')
    expect(failed).toMatchObject({ url: `${front!.url}/wrong${DISCOVERY}`, status: 404 })
    expect(failed.message).toMatch(/HTTP 404/)
  })

  it('a redirect on the issuer origin is followed with a warning', async () => {
    const logs = captureLog()
    await frontedIdp((req, res) => {
      if (req.url === DISCOVERY) {
        res.writeHead(301, { location: `${DISCOVERY}/` }).end()
        return true
      }
      if (req.url === `${DISCOVERY}/`) req.url = DISCOVERY
      return false
    })
    await start(front!.url, logs)
    expect(await logged(logs, 'oidc.discovery_redirected')).toMatchObject({
      level: 'warn',
      from: `${front!.url}${DISCOVERY}`,
      to: `${front!.url}${DISCOVERY}/`,
    })
    const health = await fetch(`${server!.url}/bff/health`)
    expect(health.status).toBe(200)
    expect(logs.containing('oidc.discovery_failed')).toEqual([])
  })

  it('a redirect to another origin is refused, saying so', async () => {
    const logs = captureLog()
    await frontedIdp((req, res) => {
      if (!req.url.startsWith(DISCOVERY)) return false
      res.writeHead(302, { location: `http://localhost:${front!.port}${DISCOVERY}` }).end()
      return true
    })
    await start(front!.url, logs)
    const failed = await logged(logs, 'oidc.discovery_failed')
    expect(failed).toMatchObject({ status: 302 })
    expect(failed.message).toMatch(/another origin \(http:\/\/localhost:\d+\)/)
  })

  it('retries in the background until discovery works, then stops; closing stops retries', async () => {
    const logs = captureLog()
    let down = true
    await frontedIdp((req, res) => {
      if (!down || !req.url.startsWith(DISCOVERY)) return false
      res.writeHead(503).end()
      return true
    })
    await start(front!.url, logs)
    // Two retries, the second after a longer wait (1 s, then 2 s): nobody asked the BFF anything.
    await logged(logs, 'oidc.discovery_retry', '"inSeconds":2')
    expect(logs.containing('oidc.discovery_failed')).toHaveLength(1) // the same problem, once
    down = false
    await logged(logs, 'oidc.discovery_ok')
    const attempts = discoveryRequests()
    await new Promise((resolve) => setTimeout(resolve, 4500))
    expect(discoveryRequests()).toBe(attempts) // works: no more attempts

    // Closing the server ends the retries of one that never got there.
    const logs2 = captureLog()
    down = true
    await server!.close()
    await start(front!.url, logs2)
    await logged(logs2, 'oidc.discovery_retry')
    await server!.close()
    server = undefined
    const afterClose = discoveryRequests()
    await new Promise((resolve) => setTimeout(resolve, 2500))
    expect(discoveryRequests()).toBe(afterClose)
  }, 120_000)
})
