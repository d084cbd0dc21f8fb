/** The WWW-Authenticate parser both transports read RFC 9470 step-up challenges with. */
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  parseChallenges,
  stepUpChallenge,
  type AuthChallenge,
} from '../../../src/core/proxy/step-up-challenge.ts'

const STEP_UP = 'error="insufficient_user_authentication"'

describe('parseChallenges', () => {
  it('reads RFC 9470’s example', () => {
    expect(
      parseChallenges(
        'Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="myACR"'
      )
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          error: 'insufficient_user_authentication',
          error_description: 'A different authentication level is required',
          acr_values: 'myACR',
        },
      },
    ])
  })

  it('reads several challenges, token68, bare schemes, empty list elements and escapes', () => {
    expect(
      parseChallenges(
        ' , Newauth realm="apps", type=1,\t title="Login to \\"apps\\"", Basic realm="simple" ,, Negotiate a87421000492aa874209af8bc028==, NTLM'
      )
    ).toEqual([
      { scheme: 'newauth', params: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
      { scheme: 'basic', params: { realm: 'simple' } },
      { scheme: 'negotiate', params: {}, token68: 'a87421000492aa874209af8bc028==' },
      { scheme: 'ntlm', params: {} },
    ])
  })

  it('reads schemes and parameter names in any case, and spaces around "="', () => {
    expect(parseChallenges('BEARER Realm = "x, y" ,ERROR=  invalid_token')).toEqual([
      { scheme: 'bearer', params: { realm: 'x, y', error: 'invalid_token' } },
    ])
  })

  it('keeps a parameter called __proto__ as a parameter', () => {
    const [challenge] = parseChallenges('Bearer __proto__="x", error="y"')!
    expect(Object.keys(challenge!.params)).toEqual(['__proto__', 'error'])
    expect(challenge!.params.error).toBe('y')
  })

  it('refuses what is malformed anywhere', () => {
    for (const header of [
      'Bearer error="unterminated',
      'Bearer error="x" realm="y"', // no comma between parameters
      'Bearer error=a b',
      'Bearer error= "x"=',
      'Bearer error="x", error="y"', // a name twice in one challenge
      'Bearer error="x", ERROR="y"',
      'Bearer abc== def',
      'Bearer\terror="x"', // scheme and parameters are separated by spaces only
      '"Bearer"',
      '=x',
      'Bearer error="a\u0001b"',
      'Bearer error="ends in a backslash\\',
      `Bearer realm="${'x'.repeat(9000)}"`,
    ]) {
      expect([header.slice(0, 60), parseChallenges(header)]).toEqual([
        header.slice(0, 60),
        undefined,
      ])
    }
  })

  it('reads back whatever it is given in RFC 9110’s grammar (property)', () => {
    const token = fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,12}$/)
    const quotable = fc.stringMatching(/^[\t\x20-\x7e]{0,20}$/)
    const challenge = fc.record({
      scheme: token,
      params: fc.uniqueArray(fc.tuple(token, fc.oneof(token, quotable), fc.boolean()), {
        maxLength: 4,
        selector: ([name]) => name.toLowerCase(),
      }),
    })
    fc.assert(
      fc.property(fc.array(challenge, { minLength: 1, maxLength: 4 }), (challenges) => {
        const header = challenges
          .map(({ scheme, params }) => {
            const list = params.map(
              ([name, value, quote]) =>
                `${name}=${quote || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(value) ? `"${value.replace(/["\\]/g, '\\$&')}"` : value}`
            )
            return list.length ? `${scheme} ${list.join(', ')}` : scheme
          })
          .join(', ')
        const expected: AuthChallenge[] = challenges.map(({ scheme, params }) => ({
          scheme: scheme.toLowerCase(),
          params: Object.fromEntries(params.map(([name, value]) => [name.toLowerCase(), value])),
        }))
        expect(parseChallenges(header)).toEqual(expected)
      })
    )
  })

  it('never throws, whatever the header (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (header) => {
        parseChallenges(header)
      })
    )
  })
})

describe('stepUpChallenge', () => {
  it('takes acr_values and max_age from a 401 Bearer or DPoP step-up challenge', () => {
    expect(stepUpChallenge(401, `Bearer ${STEP_UP}, acr_values="urn:a mfa", max_age=300`)).toEqual({
      acr: ['urn:a', 'mfa'],
      maxAge: 300,
    })
    expect(stepUpChallenge(401, `DPoP algs="ES256", ${STEP_UP}, max_age="0"`)).toEqual({
      maxAge: 0,
    })
    expect(
      stepUpChallenge(
        401,
        `Basic realm="x", Bearer error=insufficient_user_authentication, acr_values=mfa`
      )
    ).toEqual({ acr: ['mfa'] })
  })

  it('finds nothing in any other answer or challenge', () => {
    for (const [status, header] of [
      [403, `Bearer ${STEP_UP}, acr_values="mfa"`],
      [200, `Bearer ${STEP_UP}, acr_values="mfa"`],
      [401, null],
      [401, ''],
      [401, 'Bearer error="invalid_token"'],
      [401, `Basic ${STEP_UP}, acr_values="mfa"`],
      [401, `Bearer ${STEP_UP}`], // asks for nothing a login brings
      [401, `Bearer error="Insufficient_User_Authentication", acr_values="mfa"`],
      [401, `Bearer ${STEP_UP}, acr_values=""`],
      [401, `Bearer ${STEP_UP}, acr_values="caf\u00e9"`],
      [401, `Bearer ${STEP_UP}, max_age=-1`],
      [401, `Bearer ${STEP_UP}, max_age="1.5"`],
      [401, `Bearer ${STEP_UP}, max_age=99999999999`],
      [401, `Bearer ${STEP_UP}, acr_values="mfa" max_age=5`],
    ] as const) {
      expect([status, header, stepUpChallenge(status, header)]).toEqual([status, header, undefined])
    }
  })
})
