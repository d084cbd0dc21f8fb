/**
 * docs/audit.md against the code: it describes every audit event, and the `jq` commands of
 * "Reading the trail" find what they promise in a trail written by the BFF's own audit writer.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { Hono } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ApiRoute } from '../../src/core/config/options.ts'
import { AUDIT_EVENTS, auditTrail, sessionHash } from '../../src/core/observe/audit.ts'
import { subjectHash, type Logger } from '../../src/core/observe/log.ts'
import { read, sourceFiles } from './markdown.ts'

const doc = read('docs/audit.md')

describe('docs/audit.md', () => {
  it('describes every audit event in its table, and no other', () => {
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` +\| (?:info|warn) /gm)].map((m) => m[1])
    expect(rows.sort()).toEqual([...AUDIT_EVENTS].sort())
  })

  it('every event the sources write is one of them', () => {
    const written = new Set<string>()
    for (const file of sourceFiles('src')) {
      for (const match of read(file).matchAll(/\baudit\??\.?\(\s*c,\s*'([a-z_]+)'/g)) {
        written.add(match[1]!)
      }
    }
    // Each event is written somewhere: a documented event nothing writes is a promise broken.
    expect([...written].sort()).toEqual([...AUDIT_EVENTS].sort())
  })
})

/** The doc's commands, as a shell runs them: table cells escape `|` as `\|`. */
const commands = [...doc.matchAll(/`((?:jq|printf) [^`]+)`/g)].map((m) =>
  m[1]!.replace(/\\\|/g, '|')
)
const hasJq = (() => {
  try {
    execFileSync('jq', ['--version'])
    return true
  } catch {
    return false
  }
})()

describe.skipIf(!hasJq)('the commands of "Reading the trail" (needs jq)', () => {
  const ALICE = { id: 'a'.repeat(43), sub: 'alice', idp: 'corp' }
  let dir: string
  let run: (command: string) => string

  beforeAll(async () => {
    // The default logger's format, into a file instead of stdout.
    const lines: string[] = []
    const log: Logger = (level, event, fields) =>
      lines.push(JSON.stringify({ time: new Date().toISOString(), level, event, ...fields }))
    const audit = auditTrail({
      log,
      clientIp: () => '203.0.113.9',
      api: [{ prefix: '/api/' }] as unknown as ApiRoute[],
    })
    const app = new Hono().all('*', async (c) => {
      log('info', 'login.success', { idp: 'corp', sub: await subjectHash('alice') })
      await audit(c, 'login', { session: ALICE, route: '/bff/callback/corp' })
      await audit(c, 'csrf_rejected', { route: '/api/', reason: 'missing_header' })
      await audit(c, 'csrf_rejected', { route: '/api/', reason: 'missing_header' })
      await audit(c, 'policy_denied', { session: ALICE, reason: 'forbidden', check: 'require' })
      log('info', 'logout', { idp: 'corp', sub: await subjectHash('alice') })
      await audit(c, 'logout', { session: ALICE, route: '/bff/logout', reason: 'user' })
      await audit(c, 'login_failed', { idp: 'corp', reason: 'access_denied' })
      await audit(c, 'admin_revoke', { sub: 'bob', idp: 'corp', reason: 'all', count: 2 })
      await audit(c, 'backchannel_logout', { sub: 'carol', idp: 'corp', reason: 'sid', count: 1 })
      return c.body(null, 204)
    })
    await app.request('/api/x')
    dir = mkdtempSync(path.join(tmpdir(), 'bff-audit-doc-'))
    writeFileSync(path.join(dir, 'bff.log'), lines.join('\n') + '\n')
    // The doc's example session is one of its own; the trail here has ALICE's.
    const session = await sessionHash(ALICE.id)
    run = (command) =>
      execFileSync('sh', ['-c', command.replace('d97ead27b35966aa', session)], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, SUB: 'alice' },
      })
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  const find = (start: string) => {
    const found = commands.filter((command) => command.startsWith(start))
    expect(found, start).toHaveLength(1)
    return found[0]!
  }
  const json = (out: string) =>
    out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)

  it('are all checked here', () => {
    expect(commands).toHaveLength(7)
  })

  it('the whole trail: the audit lines only', () => {
    const out = json(run(find(`jq -c 'select(.audit == true)'`)))
    expect(out).toHaveLength(8)
    expect(out.every((line) => line.audit === true)).toBe(true)
  })

  it("one user's events, by the hash the printf command gives", async () => {
    const hash = run(find('printf')).trim()
    expect(hash).toBe(await subjectHash('alice'))
    // The doc's example hash is alice's, the demo IdP's user.
    const out = json(run(find('jq -c --arg sub')))
    expect(out.map((line) => line.event)).toEqual(['login', 'policy_denied', 'logout'])
  })

  it('one session from login to end', () => {
    const out = json(run(find('jq -c --arg s ')))
    expect(out.map((line) => line.event)).toEqual(['login', 'policy_denied', 'logout'])
  })

  it('logins and failed logins by address', () => {
    const rows = run(find(`jq -r 'select(.event == "login"`))
      .trim()
      .split('\n')
      .map((row) => row.split('\t').slice(1))
    expect(rows).toEqual([
      ['login', '203.0.113.9', ''],
      ['login_failed', '203.0.113.9', 'access_denied'],
    ])
  })

  it('refusals by event and reason, most frequent first', () => {
    const out = run(find(`jq -r 'select(.audit == true and .level == "warn")`))
    expect(
      out
        .trim()
        .split('\n')
        .map((row) => row.trim().split(/\s+/))
    ).toEqual([
      ['2', 'csrf_rejected', 'missing_header'],
      ['1', 'policy_denied', 'forbidden'],
      ['1', 'login_failed', 'access_denied'],
    ])
  })

  it('every session an admin or the IdP ended', () => {
    const out = json(run(find(`jq -c 'select(.event == "admin_revoke"`)))
    expect(out.map((line) => [line.event, line.count])).toEqual([
      ['admin_revoke', 2],
      ['backchannel_logout', 1],
    ])
  })
})
