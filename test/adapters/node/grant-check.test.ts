/**
 * Node's start-up grant check: only an IdP that answers now can stop start-up; one that is away
 * must not keep the BFF down (its routes then fail closed with 503 grant_not_supported).
 */
import { describe, expect, it } from 'vitest'
import { grantProblems } from '../../../src/adapters/node/grant-check.ts'
import { optionsFromEnv } from '../../../src/index.ts'
import { freePort } from '../../helpers/upstream.ts'

const config = (issuer: string, routeToken: string) =>
  optionsFromEnv(
    {
      BFF_ISSUER: issuer,
      BFF_CLIENT_ID: 'client',
      BFF_CLIENT_SECRET: 'secret',
      BFF_SESSION_SECRET: 'x'.repeat(32),
      BFF_BASE_URL: 'http://localhost:3000',
      BFF_IDP_TIMEOUT: '2',
      BFF_CONFIG: 'x',
    },
    {
      configFile: JSON.stringify({
        routes: [{ prefix: '/reports/', upstream: 'http://127.0.0.1:9/', token: routeToken }],
      }),
    }
  )

describe('grantProblems', () => {
  it('says nothing when the IdP cannot be reached now', async () => {
    const port = await freePort()
    expect(await grantProblems(config(`http://127.0.0.1:${port}`, 'client'))).toEqual([])
  })

  it('asks the IdP nothing when no route needs a grant', async () => {
    let asked = 0
    const counting: typeof fetch = async (...args) => {
      asked++
      return fetch(...args)
    }
    expect(await grantProblems(config('http://127.0.0.1:9', 'user'), counting)).toEqual([])
    expect(asked).toBe(0)
  })
})
