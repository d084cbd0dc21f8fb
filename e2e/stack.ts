/**
 * The system under test for the browser suite: the real IdP (oidc-provider) and the demo API on
 * loopback in this process, and the BFF on the target runtime chosen by the Playwright project
 * (`E2E_TARGETS`). Only `startBff` differs per target; everything the tests look at (the IdP's
 * counters, the tokens it issued) lives here in Node whatever runs the BFF.
 *
 * Two shapes (`StackIdps`): `env`, one IdP from `BFF_*` settings with short-lived tokens, which
 * most specs use; and `demo`, the demo's own parts (src/demo/parts.ts: two IdPs and the routes in a
 * config file, as `npm start` runs them).
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Env } from '../src/core/config/env.ts'
import { startDemoApi } from '../src/demo/api.ts'
import { apiClientMetadata, bffClientMetadata, startIdp, type Idp } from '../src/demo/idp.ts'
import { startDemoParts } from '../src/demo/parts.ts'
import type { WorkerBuild } from '../test/adapters/workers/build.ts'

export type Target = 'node' | 'workerd'
export const TARGETS: readonly Target[] = ['node', 'workerd']

/** `env`: one IdP from the settings. `demo`: the demo's two IdPs from its config file. */
export type StackIdps = 'env' | 'demo'

/** One IdP of the stack, as the BFF names it. */
export interface StackIdp {
  /** The name in `/bff/login?idp=` (`default` for the env-configured IdP). */
  name: string
  /** What the SPA's login button says after "Log in with". */
  label: string
  idp: Idp
  /** The IdP's end-session endpoint, where RP-initiated logout lands with an `id_token_hint`. */
  endSessionEndpoint: string
}

/** Access tokens live this long, so a test can wait one out. */
export const ACCESS_TOKEN_TTL = 3
/** The BFF refreshes this long before expiry: short enough that a token is used for a while first. */
export const REFRESH_SKEW = 1
export const POST_LOGOUT_PATH = '/logged-out.html'

export interface Stack {
  target: Target
  /** The BFF's origin as the browser sees it, e.g. `http://localhost:41234`. */
  url: string
  /** The first (default) IdP. */
  idp: Idp
  /** Every IdP, the first being `idp`. */
  idps: StackIdp[]
  /**
   * Where the browser lands after logout: `BFF_POST_LOGOUT_REDIRECT` (`/logged-out.html`) on Node.
   * On workerd the static assets answer it with a 307 to `/logged-out`: Cloudflare's default
   * `html_handling` ("auto-trailing-slash") serves `x.html` at `/x`, as a deployment would.
   */
  postLogoutUrl: string
  /** The first IdP's end-session endpoint, where RP-initiated logout lands with an `id_token_hint`. */
  endSessionEndpoint: string
  /** Every token the IdPs handed to the BFF, so tests can look for them where they must not be. */
  tokens: TokenLedger
  /** The BFF's log lines (JSON), newest last. */
  logs: string[]
  close(): Promise<void>
}

export interface IssuedTokens {
  /** The IdP that issued them. */
  issuer: string
  accessToken?: string
  refreshToken?: string
  idToken?: string
  grantType: string
  /** Epoch seconds at which the access token expires. */
  accessTokenExpiresAt: number
}

export interface TokenLedger {
  issued: IssuedTokens[]
  /** Every token string issued so far, with its kind and issuer. */
  all(): Array<{
    kind: 'access_token' | 'refresh_token' | 'id_token'
    value: string
    issuer: string
  }>
  last(): IssuedTokens | undefined
}

interface BffHandle {
  url: string
  logs: string[]
  close(): Promise<void>
}

/** Starts one BFF on `target` from `BFF_*` settings (`PORT`, `HOST` say where it listens). */
async function startBff(target: Target, env: Env): Promise<BffHandle> {
  if (target === 'node') {
    const { startNode } = await import('../src/adapters/node/server.ts')
    const logs: string[] = []
    // The demo SPA as an operator serves one: from BFF_SPA_DIR (production serves none by default).
    const settings = { ...env, BFF_SPA_DIR: fileURLToPath(new URL('../public/', import.meta.url)) }
    const server = await startNode(settings, {
      deps: {
        log: (level, event, fields) => {
          logs.push(JSON.stringify({ level, event, ...fields }))
          if (logs.length > 2000) logs.splice(0, 1000)
        },
      },
    })
    return { url: env.BFF_BASE_URL!, logs, close: () => server.close() }
  }
  // workerd: the Worker bundle (built once by global-setup.ts) in the real runtime through
  // Miniflare, with wrangler.toml's bindings and public/ as its static assets. PORT and HOST are
  // Node's; the Worker's store defaults to wrangler.toml's durable-object.
  const settings: Env = { ...env, HOST: undefined, PORT: undefined }
  const { startWorkerd } = await import('../test/adapters/workers/workerd.ts')
  const worker = await startWorkerd({
    build: await workerBuild(),
    port: Number(env.PORT),
    assets: true,
    env: settings,
  })
  return { url: env.BFF_BASE_URL!, logs: worker.logs, close: () => worker.close() }
}

/** Where global-setup.ts hands the Worker bundle to the Playwright workers. */
export const WORKER_BUILD_ENV = 'E2E_WORKER_BUILD'

/** The bundle global-setup.ts built (or, without it, a fresh build). */
async function workerBuild(): Promise<WorkerBuild> {
  const built = process.env[WORKER_BUILD_ENV]
  if (built) return JSON.parse(built) as WorkerBuild
  const { buildWorker } = await import('../test/adapters/workers/build.ts')
  return buildWorker()
}

/** `E2E_STORE` values a target cannot run, and why (the BFF would only answer `invalid_config`). */
const UNSUPPORTED_STORES: Record<Target, Record<string, string>> = {
  node: { 'durable-object': 'Durable Objects exist only on Cloudflare Workers' },
  workerd: { redis: 'the redis store needs ioredis and TCP: Node only' },
}

export async function startStack(target: Target, idps: StackIdps = 'env'): Promise<Stack> {
  const store = process.env.E2E_STORE
  const unsupported = store && UNSUPPORTED_STORES[target][store]
  if (unsupported) throw new Error(`E2E_STORE=${store} cannot run on ${target}: ${unsupported}`)
  const port = await freePort()
  // localhost, not 127.0.0.1 like the IdP: the BFF and the IdP are then different sites, as in
  // production, so the SameSite attributes of both sides' cookies are really exercised.
  const baseUrl = `http://localhost:${port}`
  const started: Array<{ close(): Promise<void> }> = []
  const closeAll = async () => {
    for (const part of started.reverse()) await part.close().catch(() => {})
  }

  try {
    const parts = idps === 'demo' ? await demoParts(target, baseUrl) : await envParts(baseUrl)
    started.push(parts)
    const stackIdps: StackIdp[] = []
    for (const { name, label, idp } of parts.idps) {
      const discovery = await fetch(`${idp.issuer}/.well-known/openid-configuration`)
      const { end_session_endpoint: endSessionEndpoint } = (await discovery.json()) as {
        end_session_endpoint: string
      }
      stackIdps.push({ name, label, idp, endSessionEndpoint })
    }
    const tokens = tokenLedger(parts.idps.map(({ idp }) => idp))

    const bff = await startBff(target, {
      PORT: String(port),
      HOST: '127.0.0.1',
      ...parts.settings,
      BFF_POST_LOGOUT_REDIRECT: POST_LOGOUT_PATH,
      ...(store ? { BFF_SESSION_STORE: store } : {}),
    })
    started.push(bff)

    const [first] = stackIdps
    return {
      target,
      url: bff.url,
      postLogoutUrl: `${bff.url}${target === 'workerd' ? '/logged-out' : POST_LOGOUT_PATH}`,
      idp: first!.idp,
      idps: stackIdps,
      endSessionEndpoint: first!.endSessionEndpoint,
      tokens,
      logs: bff.logs,
      close: closeAll,
    }
  } catch (error) {
    await closeAll()
    throw error
  }
}

/** What the BFF is pointed at: its IdPs, the `BFF_*` settings naming them, and how to stop them. */
interface Parts {
  idps: Array<{ name: string; label: string; idp: Idp }>
  settings: Env
  close(): Promise<void>
}

/** One IdP (access tokens live 3 s) and the demo API, named by `BFF_*` settings alone. */
async function envParts(baseUrl: string): Promise<Parts> {
  const clientSecret = randomBytes(24).toString('base64url')
  const apiSecret = randomBytes(24).toString('base64url')
  const idp = await startIdp({
    accessTokenTtl: ACCESS_TOKEN_TTL,
    clients: [
      bffClientMetadata({
        redirectUris: [`${baseUrl}/bff/callback`],
        postLogoutRedirectUris: [`${baseUrl}/`, `${baseUrl}${POST_LOGOUT_PATH}`],
        clientId: 'bff-e2e',
        clientSecret,
      }),
      apiClientMetadata('demo-api', apiSecret),
    ],
  })
  try {
    const api = await startDemoApi({
      issuer: idp.issuer,
      clientId: 'demo-api',
      clientSecret: apiSecret,
    })
    return {
      idps: [{ name: 'default', label: 'default', idp }],
      settings: {
        BFF_ISSUER: idp.issuer,
        BFF_CLIENT_ID: 'bff-e2e',
        BFF_CLIENT_SECRET: clientSecret,
        BFF_BASE_URL: baseUrl,
        BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
        BFF_API: `/api/=${api.url}/`,
        BFF_REFRESH_SKEW: String(REFRESH_SKEW),
      },
      async close() {
        await api.stop()
        await idp.stop()
      },
    }
  } catch (error) {
    await idp.stop()
    throw error
  }
}

/**
 * The demo's parts as `npm start` runs them: two IdPs, the demo API and the config file naming
 * them, which Node reads from a file and workerd takes as its text.
 */
async function demoParts(target: Target, baseUrl: string): Promise<Parts> {
  // The live feed's WebSocket route on Node only: Workers do not relay WebSockets yet.
  const demo = await startDemoParts(baseUrl, {})
  let dir: string | undefined
  try {
    let config = demo.configFile!
    if (target === 'node') {
      dir = await mkdtemp(path.join(tmpdir(), 'bff-e2e-'))
      config = path.join(dir, 'bff.json')
      await writeFile(config, demo.configFile!)
    }
    return {
      idps: demo.idps,
      settings: { ...demo.settings, BFF_CONFIG: config },
      async close() {
        await demo.stop()
        if (dir) await rm(dir, { recursive: true, force: true })
      },
    }
  } catch (error) {
    await demo.stop()
    throw error
  }
}

/** Reads the token endpoints' answers as they leave the IdPs; no introspection, no BFF internals. */
function tokenLedger(idps: Idp[]): TokenLedger {
  const issued: IssuedTokens[] = []
  for (const idp of idps) {
    idp.provider.on('grant.success', (ctx: TokenEndpointContext) => {
      const body = ctx.body ?? {}
      issued.push({
        issuer: idp.issuer,
        accessToken: body.access_token,
        refreshToken: body.refresh_token,
        idToken: body.id_token,
        grantType: String(ctx.oidc.params.grant_type),
        accessTokenExpiresAt: Math.floor(Date.now() / 1000) + (body.expires_in ?? 0),
      })
    })
  }
  return {
    issued,
    all() {
      return issued.flatMap((entry) =>
        (
          [
            ['access_token', entry.accessToken],
            ['refresh_token', entry.refreshToken],
            ['id_token', entry.idToken],
          ] as const
        ).flatMap(([kind, value]) => (value ? [{ kind, value, issuer: entry.issuer }] : []))
      )
    },
    last: () => issued.at(-1),
  }
}

interface TokenEndpointContext {
  body?: {
    access_token?: string
    refresh_token?: string
    id_token?: string
    expires_in?: number
  }
  oidc: { params: Record<string, unknown> }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}
