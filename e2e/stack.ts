/**
 * The system under test for the browser suite: the real IdP (oidc-provider) and the demo API on
 * loopback in this process, and the BFF on the target runtime chosen by the Playwright project
 * (`E2E_TARGETS`). Only `startBff` differs per target; everything the tests look at (the IdP's
 * counters, the tokens it issued) lives here in Node whatever runs the BFF.
 */
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import type { Env } from '../src/core/config/env.ts'
import { startDemoApi } from '../src/demo/api.ts'
import { apiClientMetadata, bffClientMetadata, startIdp, type Idp } from '../src/demo/idp.ts'
import type { WorkerBuild } from '../test/adapters/workers/build.ts'

export type Target = 'node' | 'workerd'
export const TARGETS: readonly Target[] = ['node', 'workerd']

/** Access tokens live this long, so a test can wait one out. */
export const ACCESS_TOKEN_TTL = 3
/** The BFF refreshes this long before expiry: short enough that a token is used for a while first. */
export const REFRESH_SKEW = 1
export const POST_LOGOUT_PATH = '/logged-out.html'

export interface Stack {
  target: Target
  /** The BFF's origin as the browser sees it, e.g. `http://localhost:41234`. */
  url: string
  idp: Idp
  /**
   * Where the browser lands after logout: `BFF_POST_LOGOUT_REDIRECT` (`/logged-out.html`) on Node.
   * On workerd the static assets answer it with a 307 to `/logged-out`: Cloudflare's default
   * `html_handling` ("auto-trailing-slash") serves `x.html` at `/x`, as a deployment would.
   */
  postLogoutUrl: string
  /** The IdP's end-session endpoint, where RP-initiated logout lands with an `id_token_hint`. */
  endSessionEndpoint: string
  /** Every token the IdP handed to the BFF, so tests can look for them where they must not be. */
  tokens: TokenLedger
  /** The BFF's log lines (JSON), newest last. */
  logs: string[]
  close(): Promise<void>
}

export interface IssuedTokens {
  accessToken?: string
  refreshToken?: string
  idToken?: string
  grantType: string
  /** Epoch seconds at which the access token expires. */
  accessTokenExpiresAt: number
}

export interface TokenLedger {
  issued: IssuedTokens[]
  /** Every token string issued so far, with its kind. */
  all(): Array<{ kind: 'access_token' | 'refresh_token' | 'id_token'; value: string }>
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

export async function startStack(target: Target): Promise<Stack> {
  const store = process.env.E2E_STORE
  const unsupported = store && UNSUPPORTED_STORES[target][store]
  if (unsupported) throw new Error(`E2E_STORE=${store} cannot run on ${target}: ${unsupported}`)
  const port = await freePort()
  // localhost, not 127.0.0.1 like the IdP: the BFF and the IdP are then different sites, as in
  // production, so the SameSite attributes of both sides' cookies are really exercised.
  const baseUrl = `http://localhost:${port}`
  const clientSecret = randomBytes(24).toString('base64url')
  const apiSecret = randomBytes(24).toString('base64url')
  const started: Array<{ close(): Promise<void> }> = []
  const closeAll = async () => {
    for (const part of started.reverse()) await part.close().catch(() => {})
  }

  try {
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
    started.push({ close: () => idp.stop() })
    const tokens = tokenLedger(idp)
    const discovery = await fetch(`${idp.issuer}/.well-known/openid-configuration`)
    const { end_session_endpoint: endSessionEndpoint } = (await discovery.json()) as {
      end_session_endpoint: string
    }

    const api = await startDemoApi({
      issuer: idp.issuer,
      clientId: 'demo-api',
      clientSecret: apiSecret,
    })
    started.push({ close: () => api.stop() })

    const bff = await startBff(target, {
      PORT: String(port),
      HOST: '127.0.0.1',
      BFF_ISSUER: idp.issuer,
      BFF_CLIENT_ID: 'bff-e2e',
      BFF_CLIENT_SECRET: clientSecret,
      BFF_BASE_URL: baseUrl,
      BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
      BFF_API: `/api/=${api.url}/`,
      BFF_REFRESH_SKEW: String(REFRESH_SKEW),
      BFF_POST_LOGOUT_REDIRECT: POST_LOGOUT_PATH,
      ...(store ? { BFF_SESSION_STORE: store } : {}),
    })
    started.push(bff)

    return {
      target,
      url: bff.url,
      postLogoutUrl: `${bff.url}${target === 'workerd' ? '/logged-out' : POST_LOGOUT_PATH}`,
      idp,
      endSessionEndpoint,
      tokens,
      logs: bff.logs,
      close: closeAll,
    }
  } catch (error) {
    await closeAll()
    throw error
  }
}

/** Reads the token endpoint's answers as they leave the IdP; no introspection, no BFF internals. */
function tokenLedger(idp: Idp): TokenLedger {
  const issued: IssuedTokens[] = []
  idp.provider.on('grant.success', (ctx: TokenEndpointContext) => {
    const body = ctx.body ?? {}
    issued.push({
      accessToken: body.access_token,
      refreshToken: body.refresh_token,
      idToken: body.id_token,
      grantType: String(ctx.oidc.params.grant_type),
      accessTokenExpiresAt: Math.floor(Date.now() / 1000) + (body.expires_in ?? 0),
    })
  })
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
        ).flatMap(([kind, value]) => (value ? [{ kind, value }] : []))
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
