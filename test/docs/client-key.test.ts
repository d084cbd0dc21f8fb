/**
 * docs/configuration.md's commands that make a private_key_jwt key, run as written: the key they
 * make is accepted as BFF_CLIENT_KEY, and the client assertion the BFF signs with it verifies with
 * the public key they make for the IdP.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import * as jose from 'jose'
import { afterAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/core/config/env.ts'
import { clientAuthOf } from '../../src/core/oidc/client-auth.ts'
import { blocks } from './markdown.ts'

function blockOf(doc: string, id: string): string {
  const block = blocks(doc).find((b) => b.marker?.kind === 'commands' && b.marker.value === id)
  if (!block) throw new Error(`${doc} has no block marked commands: ${id}`)
  return block.body
}

describe("docs/configuration.md's client key commands", () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bff-client-key-'))
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('make a key the BFF signs client assertions with and the IdP verifies', async () => {
    for (const line of blockOf('docs/configuration.md', 'client-key').split('\n')) {
      if (line.trim()) execFileSync('sh', ['-c', line], { cwd: dir, stdio: 'pipe' })
    }
    const config = parseConfig({
      BFF_ISSUER: 'https://idp.example.com',
      BFF_CLIENT_ID: 'bff',
      BFF_CLIENT_AUTH: 'private_key_jwt',
      BFF_CLIENT_KEY: readFileSync(path.join(dir, 'bff-client-key.pem'), 'utf8'),
      BFF_BASE_URL: 'https://app.example.com',
      BFF_SESSION_SECRET: 'a-session-secret-of-at-least-32-characters!',
    })
    const auth = await clientAuthOf(config)
    const body = new URLSearchParams()
    await auth({ issuer: 'https://idp.example.com' }, { client_id: 'bff' }, body, new Headers())
    const publicKey = await jose.importSPKI(
      readFileSync(path.join(dir, 'bff-client-key.pub.pem'), 'utf8'),
      'ES256'
    )
    const { payload, protectedHeader } = await jose.jwtVerify(
      body.get('client_assertion')!,
      publicKey,
      { issuer: 'bff', subject: 'bff', audience: 'https://idp.example.com' }
    )
    expect(protectedHeader.alg).toBe('ES256')
    expect(payload.jti).toEqual(expect.any(String))
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(60)
  })
})
