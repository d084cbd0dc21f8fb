/**
 * The audit writer on its own: what goes in raw comes out hashed or narrowed to a code, whatever
 * a caller hands it. The trail end to end: test/integration/audit.test.ts.
 */
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import type { ApiRoute } from '../../../src/core/config/options.ts'
import {
  auditTrail,
  refreshReason,
  sessionHash,
  type AuditEvent,
  type AuditFields,
} from '../../../src/core/observe/audit.ts'
import { subjectHash } from '../../../src/core/observe/log.ts'
import { captureLog } from '../../helpers/capture-log.ts'

const API = [{ prefix: '/api/orders/' }, { prefix: '/api/' }] as unknown as ApiRoute[]

/** Calls `audit` from a handler at `registered` for a request to `path`; the line written. */
async function written(
  event: AuditEvent,
  fields: AuditFields,
  { registered = '*', path = '/' }: { registered?: string; path?: string } = {}
): Promise<Record<string, unknown>> {
  const captured = captureLog()
  const audit = auditTrail({ log: captured.log, clientIp: () => '198.51.100.7', api: API })
  const app = new Hono().get(registered, async (c) => {
    await audit(c, event, fields)
    return c.body(null, 204)
  })
  expect((await app.request(path)).status).toBe(204)
  expect(captured.lines).toHaveLength(1)
  return JSON.parse(captured.lines[0]!) as Record<string, unknown>
}

const SESSION = { id: 'session-id-0123456789abcdef-secret', sub: 'alice@example.com', idp: 'corp' }

describe('audit', () => {
  it('hashes the subject and the session id, and never writes either', async () => {
    const line = await written('logout', { session: SESSION, reason: 'user' })
    expect(line).toMatchObject({
      audit: true,
      event: 'logout',
      level: 'info',
      sub: await subjectHash(SESSION.sub),
      idp: 'corp',
      session: await sessionHash(SESSION.id),
      ip: '198.51.100.7',
      reason: 'user',
    })
    const text = JSON.stringify(line)
    expect(text).not.toContain(SESSION.id)
    expect(text).not.toContain(SESSION.sub)
    // A session's handle is never some subject's: the two hashes are kept apart by a label.
    expect(line.session).not.toBe(await subjectHash(SESSION.id))
  })

  it('writes a reason only when it is a code', async () => {
    for (const reason of ['Invalid grant: token revoked', 'x'.repeat(65), 'a"b', 'Code', '']) {
      expect((await written('login_failed', { reason })).reason).toBe('other')
    }
    expect((await written('login_failed', { reason: 'invalid_grant' })).reason).toBe(
      'invalid_grant'
    )
  })

  it('writes an acr only when it is a short token or URI', async () => {
    expect((await written('step_up', { acr: 'urn:mace:incommon:iap:silver' })).acr).toBe(
      'urn:mace:incommon:iap:silver'
    )
    for (const acr of ['mfa gold', '<script>', 'x'.repeat(129), 7]) {
      expect((await written('step_up', { acr })).acr).toBeUndefined()
    }
  })

  it("names the route by its configured prefix or the handler's /bff/ path, never the path", async () => {
    const api = await written('csrf_rejected', {}, { path: '/api/orders/7/lines?token=t0ken' })
    expect(api.route).toBe('/api/orders/')
    const bff = await written('logout', {}, { registered: '/bff/logout', path: '/bff/logout?x=1' })
    expect(bff.route).toBe('/bff/logout')
    // A handler registered with a parameter or a wildcard gives no route rather than a path.
    const wild = await written('logout', {}, { registered: '/bff/:name', path: '/bff/anything' })
    expect(wild.route).toBeUndefined()
    expect((await written('logout', {}, { path: '/elsewhere' })).route).toBeUndefined()
  })

  it('marks refusals as warnings, the life of a session as info', async () => {
    expect((await written('csrf_rejected', {})).level).toBe('warn')
    expect((await written('login', {})).level).toBe('info')
  })
})

describe('refreshReason', () => {
  it("keeps a standard OAuth error or a refusal's status, else the BFF's code", () => {
    expect(refreshReason('session_expired', 'ResponseBodyError:invalid_grant')).toBe(
      'invalid_grant'
    )
    expect(refreshReason('session_expired', 'Error:refused_http_401')).toBe('refused_http_401')
    // An IdP's own words are not kept.
    expect(refreshReason('session_expired', 'ResponseBodyError:token_was_stolen')).toBe(
      'session_expired'
    )
    expect(
      refreshReason('idp_unavailable', 'TypeError: fetch failed (ECONNREFUSED 1.2.3.4:9)')
    ).toBe('idp_unavailable')
    expect(refreshReason('idp_timeout', undefined)).toBe('idp_timeout')
  })
})
