/**
 * The Node entry as an operator meets it: a real process, started the way README says.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { createCookieJar, redirectLocation } from './helpers/http.ts'
import { loginAtIdp } from './helpers/idp-login.ts'
import { freePort } from './helpers/upstream.ts'
import { startNode } from '../src/node.ts'

const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGTERM')
})

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/node.ts'], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  children.push(child)
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (d) => (stdout += d))
  child.stderr!.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  const output = async (pattern: RegExp, ms = 15_000) => {
    const until = Date.now() + ms
    while (!pattern.test(stdout) && Date.now() < until) await new Promise((r) => setTimeout(r, 50))
    return stdout
  }
  return { exited, output, stderr: () => stderr }
}

describe('start-up settings', () => {
  it('stops with one line per bad setting, naming it, and never echoes a secret', async () => {
    const secret = 'too-short-secret-value'
    const proc = start({
      BFF_ISSUER: 'https://idp.example.com',
      BFF_SESSION_SECRET: secret,
      BFF_SESSION_STORE: 'floppy',
    })
    expect(await proc.exited).toBe(1)
    const lines = proc.stderr().trim().split('\n')
    expect(lines).toContain(
      'bff: invalid setting: BFF_CLIENT_ID is required: the client id registered at the IdP'
    )
    expect(lines.some((l) => l.startsWith('bff: invalid setting: BFF_SESSION_SECRET'))).toBe(true)
    expect(lines.some((l) => l.startsWith('bff: invalid setting: BFF_SESSION_STORE'))).toBe(true)
    expect(lines.length).toBe(4) // client id, client secret, session secret, store
    expect(proc.stderr()).not.toContain(secret)
  })
})

describe('start-up settings, with a bad PORT', () => {
  it('names the port among the other bad settings, not alone', async () => {
    const proc = start({
      PORT: 'abc',
      BFF_ISSUER: 'ftp://idp.example.com',
      BFF_CLIENT_ID: 'client',
      BFF_CLIENT_SECRET: 'client-secret',
      BFF_SESSION_SECRET: 'short',
    })
    expect(await proc.exited).toBe(1)
    const lines = proc.stderr().trim().split('\n')
    expect(lines).toContain('bff: invalid setting: PORT must be a port number, got "abc"')
    expect(lines.some((l) => l.startsWith('bff: invalid setting: BFF_ISSUER'))).toBe(true)
    expect(lines.some((l) => l.startsWith('bff: invalid setting: BFF_SESSION_SECRET'))).toBe(true)
    expect(lines).toHaveLength(3)
  })
})

describe('npm start without BFF_ISSUER: the demo', () => {
  it('runs the IdP, the API and the BFF in one process; demo/demo can log in and call the API', async () => {
    const port = await freePort()
    const proc = start({ PORT: String(port) })
    const out = await proc.output(/Demo running/)
    expect(out).toContain(`open http://localhost:${port}`)

    const jar = createCookieJar({ baseUrl: `http://localhost:${port}` })
    const page = await jar.get('/')
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('BFF session broker demo')

    const login = await jar.get('/bff/login?returnTo=/')
    const atIdp = await loginAtIdp(jar, redirectLocation(login)!, {
      login: 'demo',
      password: 'demo',
    })
    const back = await jar.follow(atIdp)
    expect(back.status).toBe(302)
    const hello = await jar.get('/api/hello', { headers: { 'x-csrf': '1' } })
    expect(hello.status).toBe(200)
    expect(await hello.json()).toMatchObject({ sub: 'demo' })
    // A child process, an IdP and a login: over 5 s on a busy machine.
  }, 30_000)
})

describe('startNode: the store the settings name', () => {
  it('BFF_SESSION_STORE=memory stays the memory store when BFF_REDIS_URL is set too', async () => {
    // A shared environment often sets BFF_REDIS_URL for every instance; memory must not quietly
    // turn into cookie sessions (with Redis for large ones) because of it.
    const server = await startNode(
      {
        BFF_ISSUER: 'https://idp.example.com',
        BFF_CLIENT_ID: 'client',
        BFF_CLIENT_SECRET: 'client-secret',
        BFF_SESSION_SECRET: 'a'.repeat(32),
        BFF_SESSION_STORE: 'memory',
        BFF_REDIS_URL: 'redis://127.0.0.1:6379',
        PORT: '0',
      },
      { serveStatic: false, deps: { log: () => {} } }
    )
    try {
      const health = await fetch(`${server.url}/bff/health`)
      // (503: idp.example.com cannot be discovered; the store is what this test is about.)
      expect(await health.json()).toMatchObject({ store: 'memory' })
    } finally {
      await server.close()
    }
  })
})
