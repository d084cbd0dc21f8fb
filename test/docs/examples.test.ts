/**
 * The examples of README.md and docs/ run as a user would run them, against a real IdP
 * (oidc-provider), a real upstream and the real Redis: the command with the README's settings,
 * the library examples in processes of their own, the README's Worker project through wrangler,
 * the store contract under vitest, and the config file through the settings parser. The type
 * check (tsconfig.json includes docs/examples) covers them too; snippets.test.ts checks that the
 * documents show these very files, and says which shell command is run where.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { parseConfig, type Env } from '../../src/core/config/env.ts'
import { DEMO_BFF_CLIENT, bffClientMetadata, startIdp, type Idp } from '../../src/demo/idp.ts'
import { createCookieJar, redirectLocation, type CookieJar } from '../helpers/http.ts'
import { nextMessage, openSocket, socketOf } from '../helpers/ws-client.ts'
import { startWsUpstream } from '../helpers/ws-upstream.ts'
import { loginAtIdp } from '../helpers/idp-login.ts'
import { testCertificates } from '../helpers/certs.ts'
import { nodeForward } from '../../src/adapters/node/upstream.ts'
import { freePort, startRecordingUpstream, type RecordingUpstream } from '../helpers/upstream.ts'
import { ROOT, blocks, read } from './markdown.ts'

// Each example is a process that compiles the sources first (tsx), then logs in through the
// IdP's pages: seconds on an idle machine, many more on two busy cores.
vi.setConfig({ testTimeout: 180_000, hookTimeout: 120_000 })

/** The body of the block marked `<!-- commands: id -->` in `doc`. */
function blockOf(doc: string, id: string): string {
  const block = blocks(doc).find((b) => b.marker?.kind === 'commands' && b.marker.value === id)
  if (!block) throw new Error(`${doc} has no block marked commands: ${id}`)
  return block.body
}

/** `export NAME=value` lines of a shell block, in order, comments dropped. */
function exportsOf(body: string): Array<[string, string]> {
  const lines = body.split('\n').map((line) => line.replace(/\s+#.*$/, ''))
  return lines.flatMap((line) => {
    const match = /^export ([A-Z][A-Z0-9_]*)=(\S+)$/.exec(line)
    return match ? [[match[1]!, match[2]!] as [string, string]] : []
  })
}

const children: ChildProcess[] = []

/** Runs a TypeScript file as `node --import tsx <file>` from the repository, with only `env`. */
function run(file: string, env: Env) {
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (stdout += d))
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  return {
    child,
    exited,
    /** Waits for `pattern` on stdout; fails with what the process said when it does not come. */
    async output(pattern: RegExp, ms = 120_000): Promise<string> {
      const until = Date.now() + ms
      while (!pattern.test(stdout) && Date.now() < until && child.exitCode === null) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      if (!pattern.test(stdout)) {
        throw new Error(`${file} never printed ${pattern}:\n${stdout}\n${stderr}`)
      }
      return stdout
    },
  }
}

let idp: Idp
let upstream: RecordingUpstream
let spaDir: string
const ports: Record<'command' | 'library' | 'redis' | 'start' | 'websockets', number> = {
  command: 0,
  library: 0,
  redis: 0,
  start: 0,
  websockets: 0,
}

beforeAll(async () => {
  for (const name of Object.keys(ports) as Array<keyof typeof ports>) ports[name] = await freePort()
  idp = await startIdp({
    clients: [
      bffClientMetadata({
        redirectUris: Object.values(ports).map((port) => `http://127.0.0.1:${port}/bff/callback`),
      }),
    ],
  })
  upstream = await startRecordingUpstream()
  spaDir = await mkdtemp(path.join(tmpdir(), 'bff-docs-spa-'))
  await writeFile(path.join(spaDir, 'index.html'), '<!doctype html><title>My app</title>')
})

afterAll(async () => {
  for (const child of children) child.kill('SIGTERM')
  await upstream?.close()
  await idp?.stop()
  if (spaDir) await rm(spaDir, { recursive: true, force: true })
})

/** Settings of a BFF on `port` that uses this test's IdP and upstream. */
function settingsFor(port: number): Record<string, string> {
  return {
    BFF_ISSUER: idp.issuer,
    BFF_CLIENT_ID: DEMO_BFF_CLIENT.clientId,
    BFF_CLIENT_SECRET: DEMO_BFF_CLIENT.clientSecret,
    BFF_BASE_URL: `http://127.0.0.1:${port}`,
    BFF_SESSION_SECRET: randomBytes(32).toString('base64url'),
    BFF_API: `/api/=${upstream.url}/`,
    PORT: String(port),
  }
}

/** Logs `alice` in at the BFF on `base` and calls its API; the upstream must see her token. */
async function loginAndCallApi(base: string, name: string): Promise<CookieJar> {
  const jar = createCookieJar({ baseUrl: base })
  const start = await jar.get('/bff/login?returnTo=/')
  expect(start.status).toBe(302)
  const atIdp = await loginAtIdp(jar, redirectLocation(start)!, {
    login: 'alice',
    password: 'pass',
  })
  const back = await jar.follow(atIdp)
  expect(back.status, 'the callback').toBe(302)
  const user = await jar.get('/bff/user', { headers: { 'x-csrf': '1' } })
  expect(await user.json()).toMatchObject({ sub: 'alice' })
  const api = await jar.get(`/api/${name}`, { headers: { 'x-csrf': '1' } })
  expect(api.status).toBe(200)
  const seen = upstream.requests.find((request) => request.url === `/${name}`)
  expect(seen?.headers.authorization).toMatch(/^Bearer \S+/)
  expect(seen?.headers.cookie).toBeUndefined()
  return jar
}

describe("README: production on Node (the 'node-production' commands)", () => {
  const settings = exportsOf(blockOf('README.md', 'node-production'))

  it('sets valid settings as written', () => {
    expect(settings.map(([name]) => name)).toContain('BFF_ISSUER')
    expect(() => parseConfig(Object.fromEntries(settings))).not.toThrow()
  })

  it('npx bff-session-broker with those settings serves the SPA, logs in and proxies', async () => {
    const port = ports.command
    // The same names as the README, with values that point at this test's IdP and upstream.
    const values: Record<string, string> = {
      ...settingsFor(port),
      BFF_SPA_DIR: spaDir,
      HOST: '127.0.0.1',
    }
    const env: Record<string, string> = { PORT: String(port) }
    for (const [name] of settings) {
      expect(values[name], `no test value for ${name}`).toBeDefined()
      env[name] = values[name]!
    }
    // The package's command is its `bin`; the test runs that file's source.
    const bin = JSON.parse(read('package.json')).bin['bff-session-broker'] as string
    const source = bin.replace(/^\.\/dist\//, 'src/').replace(/\.js$/, '.ts')
    const command = run(source, env)
    await command.output(/^Open http/m)
    const base = `http://127.0.0.1:${port}`
    // The SPA's page: BFF_SPA_DIR's once lib/demo lands (the demo's public/ until then).
    const page = await fetch(`${base}/`)
    expect(page.status).toBe(200)
    expect(page.headers.get('content-type')).toContain('text/html')
    await loginAndCallApi(base, 'command')
  })
})

describe('docs/examples on Node', () => {
  it('node-library.ts: createBff mounted in a Hono app, next to its own routes', async () => {
    const port = ports.library
    const example = run('docs/examples/node-library.ts', settingsFor(port))
    await example.output(/listening on/)
    const base = `http://127.0.0.1:${port}`
    const own = await fetch(`${base}/hello`)
    expect(await own.text()).toBe('Hello from my own route')
    const health = await fetch(`${base}/bff/health`)
    expect(health.status).toBe(200)
    await loginAndCallApi(base, 'library')
  })

  it('node-websockets.ts: a host app relays the WebSockets of a websocket route', async () => {
    const port = ports.websockets
    const feed = await startWsUpstream()
    const dir = await mkdtemp(path.join(tmpdir(), 'bff-docs-ws-'))
    try {
      const file = path.join(dir, 'bff.json')
      const routes = [
        { prefix: '/live/', upstream: `${feed.url}/ws/`, websocket: true },
        { prefix: '/api/', upstream: `${upstream.url}/` },
      ]
      await writeFile(file, JSON.stringify({ routes }))
      // The routes come from the file, which BFF_API cannot be set beside.
      const settings: Record<string, string | undefined> = {
        ...settingsFor(port),
        BFF_CONFIG: file,
      }
      delete settings.BFF_API
      const example = run('docs/examples/node-websockets.ts', settings as Record<string, string>)
      await example.output(/listening on/)
      const base = `http://127.0.0.1:${port}`
      const jar = await loginAndCallApi(base, 'websockets')
      const ws = await socketOf(openSocket({ url: base, baseUrl: base }, '/live/echo', { jar }))
      ws.send('hello')
      expect((await nextMessage(ws)).data.toString()).toBe('hello')
      expect(feed.upgrades[0]!.headers.authorization).toMatch(/^Bearer \S+/)
      ws.close()
    } finally {
      await feed.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('node-redis.ts: the session lives in Redis under the prefix', async () => {
    const port = ports.redis
    const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true })
    await redis.connect()
    const keys = async (match: string) => {
      const found: string[] = []
      for await (const batch of redis.scanStream({ match })) found.push(...(batch as string[]))
      return found
    }
    try {
      const before = await keys('my-app:session:*')
      const example = run('docs/examples/node-redis.ts', {
        ...settingsFor(port),
        REDIS_URL: 'redis://127.0.0.1:6379',
      })
      await example.output(/listening on/)
      const base = `http://127.0.0.1:${port}`
      expect(await (await fetch(`${base}/bff/health`)).json()).toMatchObject({ store: 'redis' })
      await loginAndCallApi(base, 'redis')
      const after = await keys('my-app:session:*')
      expect(after.filter((key) => !before.includes(key))).toHaveLength(1)
    } finally {
      const written = await keys('my-app:*')
      if (written.length > 0) await redis.del(...written)
      await redis.quit()
    }
  })

  it('node-start.ts: startNode answers health and closes on SIGTERM', async () => {
    const port = ports.start
    const example = run('docs/examples/node-start.ts', settingsFor(port))
    await example.output(/BFF listening on/)
    const health = await fetch(`http://127.0.0.1:${port}/bff/health`)
    expect(await health.json()).toMatchObject({ status: 'ok', idp: 'ok' })
    example.child.kill('SIGTERM')
    expect(await example.exited).toBe(0)
  })

  it('store-contract.test.ts: the store contract passes under vitest', async () => {
    // A vitest of its own: the package names resolve to the sources there, as tsconfig maps them.
    const vitest = spawn(
      process.execPath,
      [
        path.join(ROOT, 'node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        'test/docs/examples.vitest.config.ts',
      ],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' }, stdio: 'pipe' }
    )
    children.push(vitest)
    let output = ''
    vitest.stdout.on('data', (d) => (output += d))
    vitest.stderr.on('data', (d) => (output += d))
    const code = await new Promise<number | null>((resolve) => vitest.on('exit', resolve))
    expect(code, output).toBe(0)
    expect(output).toContain('docs/examples/store-contract.test.ts')
    expect(output).toMatch(/Tests\s+\d+ passed/)
  })
})

describe('README: the Worker project (worker.ts and wrangler.toml)', () => {
  const toml = read('docs/examples/wrangler.toml')
  const vars = Object.fromEntries(
    [...(/^\[vars\]\n([\s\S]*?)\n\n/m.exec(toml)?.[1] ?? '').matchAll(/^(\w+) = "([^"]*)"$/gm)].map(
      (m) => [m[1]!, m[2]!]
    )
  )

  it("keeps the bindings and compatibility date of this repository's own Worker", () => {
    const own = read('wrangler.toml')
    const pick = (text: string) => ({
      date: /^compatibility_date = .*$/m.exec(text)?.[0],
      bindings: [...text.matchAll(/^name = "(BFF_\w+)"\nclass_name = "(\w+)"$/gm)].map((m) => m[0]),
      migration: /^new_sqlite_classes = .*$/m.exec(text)?.[0],
    })
    expect(pick(toml)).toEqual(pick(own))
    expect(pick(toml).bindings).toHaveLength(2)
  })

  it('has valid settings once the two secrets are put', () => {
    expect(Object.keys(vars)).toContain('BFF_ISSUER')
    const secrets = { BFF_CLIENT_SECRET: 'secret', BFF_SESSION_SECRET: 'x'.repeat(32) }
    expect(() =>
      parseConfig({ ...vars, ...secrets }, { sessionStore: 'durable-object' })
    ).not.toThrow()
    // Without them, the settings name what is missing, as the Worker's 500 does.
    expect(() => parseConfig(vars, { sessionStore: 'durable-object' })).toThrow(/BFF_CLIENT_SECRET/)
  })

  it('builds with wrangler deploy --dry-run', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bff-docs-worker-'))
    try {
      await copyFile(path.join(ROOT, 'docs/examples/worker.ts'), path.join(dir, 'worker.ts'))
      // `npm install bff-session-broker` stands in as an alias to the sources.
      const entry = path.join(ROOT, 'src/adapters/workers/index.ts')
      await writeFile(
        path.join(dir, 'wrangler.toml'),
        `${toml}\n[alias]\n"bff-session-broker/workers" = ${JSON.stringify(entry)}\n`
      )
      await mkdir(path.join(dir, 'dist'))
      await writeFile(path.join(dir, 'dist/index.html'), '<!doctype html><title>My app</title>')
      const wrangler = spawn(
        path.join(ROOT, 'node_modules/.bin/wrangler'),
        ['deploy', '--dry-run', '--outdir', 'out'],
        {
          cwd: dir,
          env: { PATH: process.env.PATH ?? '', HOME: dir, WRANGLER_SEND_METRICS: 'false' },
          stdio: 'pipe',
        }
      )
      children.push(wrangler)
      let output = ''
      wrangler.stdout.on('data', (d) => (output += d))
      wrangler.stderr.on('data', (d) => (output += d))
      const code = await new Promise<number | null>((resolve) => wrangler.on('exit', resolve))
      expect(code, output).toBe(0)
      expect(output).toMatch(/env\.BFF_SESSIONS \(SessionObject\)/)
      expect(existsSync(path.join(dir, 'out/worker.js'))).toBe(true)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('docs/routes.md: the WebSocket route example', () => {
  it('loads, the route taking WebSockets', () => {
    const config = parseConfig(
      {
        BFF_SESSION_SECRET: 'x'.repeat(32),
        BFF_BASE_URL: 'https://app.example.com',
        CORP_CLIENT_SECRET: 'from-the-environment',
      },
      { configFile: read('docs/examples/route-websocket.json') }
    )
    expect(config.api.find((r) => r.prefix === '/live/')?.websocket).toBe(true)
    expect(config.api.find((r) => r.prefix === '/api/')?.websocket).toBeUndefined()
  })
})

describe('docs/routes.md: the route policies example', () => {
  it('loads, each route with its policy', () => {
    const config = parseConfig(
      {
        BFF_SESSION_SECRET: 'x'.repeat(32),
        BFF_BASE_URL: 'https://app.example.com',
        CORP_CLIENT_SECRET: 'from-the-environment',
      },
      { configFile: read('docs/examples/route-policies.json') }
    )
    expect(config.idpName).toBe('corp')
    expect(config.claims).toEqual({ roles: 'realm_access.roles' })
    const route = (prefix: string) => config.api.find((r) => r.prefix === prefix)!
    expect(route('/api/catalog/').token).toBe('none')
    expect([...route('/api/orders/').methods!]).toEqual(['GET', 'POST'])
    expect(route('/api/admin/')).toMatchObject({
      idps: ['corp'],
      require: { roles: 'admin', email_verified: true },
      acr: ['mfa'],
      maxAge: 300,
    })
  })
})

describe('docs/configuration.md: the config file example', () => {
  const file = read('docs/examples/bff-config.json')
  const env = {
    BFF_SESSION_SECRET: 'x'.repeat(32),
    BFF_BASE_URL: 'https://app.example.com',
    CORP_CLIENT_SECRET: 'from-the-environment',
  }

  it('loads: its IdP, and its routes longest prefix first', () => {
    const config = parseConfig(env, { configFile: file })
    expect(config.issuer.href).toBe('https://login.corp.example/')
    expect(config.clientSecret).toBe('from-the-environment')
    expect(config.api.map((route) => route.prefix)).toEqual(['/api/orders/', '/api/'])
  })

  it('names a missing ${NAME} with its JSON path', () => {
    const without = { ...env, CORP_CLIENT_SECRET: undefined }
    expect(() => parseConfig(without, { configFile: file })).toThrow(
      'BFF_CONFIG idps.corp.clientSecret: environment variable CORP_CLIENT_SECRET is not set'
    )
  })
})

describe('README: the several IdPs example', () => {
  const file = read('docs/examples/bff-config-idps.json')
  const env = {
    BFF_SESSION_SECRET: 'x'.repeat(32),
    BFF_BASE_URL: 'https://app.example.com',
    CORP_CLIENT_SECRET: 'corp-secret',
    PARTNER_CLIENT_SECRET: 'partner-secret',
  }

  it('loads both IdPs, each with its callback, client authentication and claims map', () => {
    const config = parseConfig(env, { configFile: file })
    expect(
      config.idps.map((idp) => [idp.name, idp.label, idp.callbackPath, idp.clientAuth, idp.claims])
    ).toEqual([
      [
        'corp',
        'Corp',
        '/bff/callback/corp',
        'client_secret_basic',
        { roles: 'realm_access.roles' },
      ],
      ['partner', 'Partner', '/bff/callback/partner', 'client_secret_post', { roles: 'groups' }],
    ])
    expect(config.idps[1]!.clientSecret).toBe('partner-secret')
    expect(config.api.find((route) => route.prefix === '/api/staff/')!.idps).toEqual(['corp'])
  })
})

describe('docs/configuration.md: the authorize and tls example', () => {
  const file = read('docs/examples/route-policy-pdp-tls.json')
  const certs = testCertificates()
  const env = {
    BFF_SESSION_SECRET: 'x'.repeat(32),
    BFF_BASE_URL: 'https://app.example.com',
    CORP_CLIENT_SECRET: 'from-the-environment',
    PAYMENTS_CLIENT_CERT: certs.client.cert,
    PAYMENTS_CLIENT_KEY: certs.client.key,
    INTERNAL_CA: certs.ca,
  }

  it('loads, with the PEM texts from the environment, and the Node transport takes them', async () => {
    const config = parseConfig(env, { configFile: file })
    const payments = config.api.find((route) => route.prefix === '/api/payments/')!
    expect(payments.authorize).toEqual({
      url: new URL('http://127.0.0.1:8181/v1/data/bff/allow'),
      cacheSeconds: 30,
    })
    expect(payments.tls).toEqual({ cert: certs.client.cert, key: certs.client.key, ca: certs.ca })
    const forward = nodeForward({ routes: config.api })
    await forward.close()
  })
})
