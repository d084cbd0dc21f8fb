import * as client from 'openid-client'
import { describe, expect, it } from 'vitest'
import { errorReason } from '../../../src/core/observe/log.ts'
import { startIdp } from '../../../src/demo/idp.ts'
import { freePort } from '../../helpers/upstream.ts'

describe('errorReason', () => {
  it('is undefined without a cause, so a log line has no reason at all (not "undefined")', () => {
    expect(errorReason(undefined)).toBeUndefined()
    expect(errorReason(null)).toBeUndefined()
    expect(JSON.stringify({ reason: errorReason(undefined) })).toBe('{}')
  })

  it('names a failed connection by the system error and the address, never the URL', async () => {
    const port = await freePort() // nothing listens there
    const err = await fetch(`http://127.0.0.1:${port}/p?access_token=t0ken`).catch((e) => e)
    const reason = errorReason(err)!
    expect(reason).toBe(`TypeError: fetch failed (ECONNREFUSED 127.0.0.1:${port})`)
    expect(reason).not.toMatch(/t0ken|\/p|http/)
    // fetch refuses a URL with credentials, quoting it in the message: the reason does not.
    const withCredentials = await fetch(`http://user:pa55word@127.0.0.1:${port}/`).catch((e) => e)
    expect(errorReason(withCredentials)).toBe('TypeError')
  })

  it('names an unknown host', async () => {
    const err = await fetch('http://no-such-host.invalid/').catch((e: unknown) => e)
    expect(errorReason(err)).toBe('TypeError: fetch failed (ENOTFOUND no-such-host.invalid)')
  })

  it("gives openid-client's class and code, and the network failure under a call", async () => {
    const port = await freePort()
    const discover = (issuer: string) =>
      client
        .discovery(new URL(issuer), 'id', 'secret', undefined, {
          execute: [client.allowInsecureRequests],
        })
        .catch((e: unknown) => e)
    expect(errorReason(await discover(`http://127.0.0.1:${port}`))).toBe(
      `TypeError: fetch failed (ECONNREFUSED 127.0.0.1:${port})`
    )
    // The real IdP reached under another name than its issuer: openid-client's ClientError.
    const idp = await startIdp()
    try {
      const otherName = idp.issuer.replace('127.0.0.1', 'localhost')
      expect(otherName).not.toBe(idp.issuer)
      expect(errorReason(await discover(otherName))).toBe(
        'ClientError:OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED'
      )
    } finally {
      await idp.stop()
    }
  })

  it('gives the class and code, never the message, which may quote a response or a token', () => {
    const quoted = Object.assign(new Error('bad token eyJhbGciOi.secret'), { code: 'OAUTH_X' })
    expect(errorReason(quoted)).toBe('Error:OAUTH_X')
    const oauth = Object.assign(new Error('server said: secret'), {
      error: 'invalid_grant',
      code: 'OAUTH_RESPONSE_BODY_ERROR',
    })
    expect(errorReason(oauth)).toBe('Error:invalid_grant')
    // An OAuth `error` comes from the IdP: free text in it is not shown.
    const free = Object.assign(new Error('x'), { error: 'the token abc is bad' })
    expect(errorReason(free)).toBe('Error')
    expect(errorReason(new TypeError('the token abc is bad'))).toBe('TypeError')
    expect(errorReason('a thrown string with a token')).toBe('string')
  })
})
