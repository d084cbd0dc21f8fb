/**
 * The bare Workers the BFF's first call is measured against (bench/workers-cold.ts): a proxy that
 * adds a fixed bearer token, and the same proxy reading its token from a session Durable Object.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { freePort } from '../test/helpers/upstream.ts'
import { CSRF, timedGet } from './load.ts'
import { start, type Setup } from './workerd.ts'

/** The bare proxy Worker: the request to the upstream with a fixed bearer token, nothing else. */
const BARE_WORKER = `
export default {
  async fetch(request, env) {
    const url = new URL(request.url)
    const headers = new Headers(request.headers)
    headers.delete('cookie')
    headers.set('authorization', 'Bearer bench-fixed-token')
    return fetch(env.UPSTREAM + url.pathname + url.search, {
      method: request.method,
      headers,
      body: request.body,
    })
  },
}
`

/**
 * The bare proxy with a session store's least: the token read from the session's Durable Object
 * (SQLite storage) named by the cookie, as a `durable-object` store must. What the store costs on
 * a fresh workerd, apart from the BFF's code.
 */
const BARE_OBJECT_WORKER = `
import { DurableObject } from 'cloudflare:workers'
export class Session extends DurableObject {
  read() { return this.ctx.storage.kv.get('session') ?? null }
  write(session) { this.ctx.storage.kv.put('session', session) }
}
export default {
  async fetch(request, env) {
    const url = new URL(request.url)
    const id = /(?:^|; )s=([^;]*)/.exec(request.headers.get('cookie') ?? '')?.[1] ?? ''
    const session = env.SESSIONS.get(env.SESSIONS.idFromName(id))
    if (url.pathname === '/login') {
      await session.write({ token: 'bench-fixed-token' })
      return new Response('ok')
    }
    const stored = await session.read()
    if (!stored) return new Response('no session', { status: 401 })
    const headers = new Headers(request.headers)
    headers.delete('cookie')
    headers.set('authorization', 'Bearer ' + stored.token)
    return fetch(env.UPSTREAM + url.pathname + url.search, {
      method: request.method,
      headers,
      body: request.body,
    })
  },
}
`

export async function bareSetup(upstream: string): Promise<Setup> {
  return {
    key: 'bare',
    port: await freePort(),
    options: {
      name: 'bare',
      modules: true,
      script: BARE_WORKER,
      compatibilityDate: '2026-04-20',
      bindings: { UPSTREAM: upstream },
    },
    headers: { ...CSRF },
    otherHeaders: { ...CSRF },
  }
}

/** The bare proxy with a session object, two sessions stored before the rounds. */
export async function bareObjectSetup(
  upstream: string
): Promise<{ setup: Setup; stop: () => Promise<void> }> {
  const persist = mkdtempSync(path.join(os.tmpdir(), 'bff-bench-workers-bare-object-'))
  const setup: Setup = {
    key: 'bare+object',
    port: await freePort(),
    persist,
    options: {
      name: 'bare-object',
      modules: true,
      script: BARE_OBJECT_WORKER,
      compatibilityDate: '2026-04-20',
      bindings: { UPSTREAM: upstream },
      durableObjects: { SESSIONS: { className: 'Session', useSQLite: true } },
    },
    headers: { ...CSRF, cookie: 's=session-a' },
    otherHeaders: { ...CSRF, cookie: 's=session-b' },
  }
  const stop = async () => rmSync(persist, { recursive: true, force: true })
  const { mf, url } = await start(setup)
  try {
    for (const headers of [setup.headers, setup.otherHeaders]) {
      const written = await timedGet(`${url}/login`, headers)
      const check = await timedGet(`${url}/api/items`, headers)
      if (written.status !== 200 || check.status !== 200) {
        throw new Error(`the bare proxy with a session object answered ${check.status}`)
      }
    }
  } catch (err) {
    await stop()
    throw err
  } finally {
    await mf.dispose()
  }
  return { setup, stop }
}
