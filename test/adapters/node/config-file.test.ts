import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { startNode } from '../../../src/adapters/node/server.ts'
import { ConfigError } from '../../../src/core/config/env.ts'

const env = {
  PORT: '0',
  BFF_BASE_URL: 'http://127.0.0.1:3000',
  BFF_SESSION_SECRET: 'a-session-secret-of-at-least-32-characters!',
}

async function problemsOf(settings: Record<string, string>) {
  const err = await startNode({ ...env, ...settings }).then(
    () => undefined,
    (e: unknown) => e
  )
  expect(err).toBeInstanceOf(ConfigError)
  return (err as ConfigError).problems
}

describe('BFF_CONFIG on Node: a path', () => {
  const dirs: string[] = []
  afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))))

  it('stops start-up naming a file it cannot read, with the other problems', async () => {
    const problems = await problemsOf({ BFF_CONFIG: '/nonexistent/bff.json', PORT: 'x' })
    expect(problems).toContain('BFF_CONFIG cannot read "/nonexistent/bff.json" (ENOENT)')
    expect(problems).toContain('PORT must be a port number, got "x"')
  })

  it("reports the file's problems with their JSON paths", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'bff-config-'))
    dirs.push(dir)
    const file = path.join(dir, 'bff.json')
    await writeFile(file, JSON.stringify({ routes: [{ prefix: '/api/', upstream: 'ftp://x/' }] }))
    const problems = await problemsOf({
      BFF_CONFIG: file,
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'c',
      BFF_CLIENT_SECRET: 's',
    })
    expect(problems).toEqual(['BFF_CONFIG routes[0].upstream: must use http or https, got "ftp:"'])
  })
})
