/** `dpop` per IdP: off unless set, `BFF_DPOP` for the IdP of the settings, refusals named. */
import { describe, expect, it } from 'vitest'
import { parseConfig, type Env } from '../../../src/core/config/env.ts'
import { problemsOf } from '../../helpers/config-problems.ts'

const SECRET = 'a-session-secret-of-at-least-32-characters!'
const env: Env = {
  BFF_ISSUER: 'https://idp.example.com',
  BFF_CLIENT_ID: 'bff',
  BFF_CLIENT_SECRET: 'secret',
  BFF_BASE_URL: 'https://app.example.com',
  BFF_SESSION_SECRET: SECRET,
}

describe('dpop', () => {
  it('is off by default and on with BFF_DPOP=true', () => {
    expect(parseConfig(env).dpop).toBe(false)
    expect(parseConfig(env).idps[0]!.dpop).toBe(false)
    const config = parseConfig({ ...env, BFF_DPOP: 'true' })
    expect(config.dpop).toBe(true)
    expect(config.idps[0]!.dpop).toBe(true)
  })

  it('names BFF_DPOP when it is not a boolean', () => {
    expect(problemsOf(() => parseConfig({ ...env, BFF_DPOP: 'yes' }))).toEqual([
      'BFF_DPOP must be true or false',
    ])
  })

  it('is per IdP in the file, and refused next to BFF_DPOP', () => {
    const file = {
      idps: {
        corp: { issuer: 'https://idp.example.com', clientId: 'a', clientSecret: 's', dpop: true },
        partner: { issuer: 'https://partner.example', clientId: 'p', clientSecret: 's' },
      },
    }
    const base = { BFF_BASE_URL: env.BFF_BASE_URL, BFF_SESSION_SECRET: SECRET }
    const config = parseConfig(base, { configFile: file })
    expect(config.idps.map((idp) => [idp.name, idp.dpop])).toEqual([
      ['corp', true],
      ['partner', false],
    ])
    expect(
      problemsOf(() => parseConfig({ ...base, BFF_DPOP: 'true' }, { configFile: file }))
    ).toEqual([expect.stringContaining('BFF_DPOP are both set')])
    const bad = { idps: { corp: { ...file.idps.corp, dpop: 'yes' } } }
    expect(problemsOf(() => parseConfig(base, { configFile: bad }))).toEqual([
      'BFF_CONFIG idps.corp.dpop: must be true or false',
    ])
  })
})
