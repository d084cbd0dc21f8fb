import { describe, expect, it } from 'vitest'
import { upstreamNonceChallenge } from '../../../src/core/proxy/dpop-challenge.ts'

describe('upstreamNonceChallenge', () => {
  it('answers the nonce of a DPoP use_dpop_nonce challenge', () => {
    expect(upstreamNonceChallenge('DPoP error="use_dpop_nonce"', 'n1')).toBe('n1')
    expect(
      upstreamNonceChallenge(
        'Bearer realm="x", DPoP algs="ES256", error="use_dpop_nonce", error_description="x"',
        'n2'
      )
    ).toBe('n2')
    expect(upstreamNonceChallenge('dpop error=use_dpop_nonce', 'n3')).toBe('n3')
  })

  it('answers nothing for other errors, other schemes or without a nonce', () => {
    expect(upstreamNonceChallenge('DPoP error="use_dpop_nonce"', null)).toBeUndefined()
    expect(upstreamNonceChallenge('DPoP error="invalid_token"', 'n')).toBeUndefined()
    expect(upstreamNonceChallenge('Bearer error="use_dpop_nonce"', 'n')).toBeUndefined()
    expect(
      upstreamNonceChallenge('DPoP algs="ES256", Bearer error="use_dpop_nonce"', 'n')
    ).toBeUndefined()
    expect(upstreamNonceChallenge('DPoPx error="use_dpop_nonce"', 'n')).toBeUndefined()
    expect(upstreamNonceChallenge(null, 'n')).toBeUndefined()
  })
})
