import { describe, expect, it } from 'vitest'
import {
  FETCH_DECODED_CODINGS,
  browserAccepts,
  upstreamAcceptEncoding,
  varyOnAcceptEncoding,
} from '../../../src/core/proxy/encoding.ts'

describe('upstreamAcceptEncoding', () => {
  it.each([
    // What browsers send: passed as it is.
    ['gzip, deflate, br, zstd', 'gzip, deflate, br, zstd'],
    ['gzip, deflate, br', 'gzip, deflate, br'],
    // None sent, or none left: identity, so no runtime adds its own default.
    [null, 'identity'],
    ['', 'identity'],
    ['identity', 'identity'],
    ['compress, identity', 'identity'],
    ['gzip;q=0', 'identity'],
    // Weights kept; refused and unknown codings dropped; x-gzip is gzip.
    ['gzip;q=0, br;q=0.8, compress', 'br;q=0.8'],
    ['x-gzip, br', 'gzip, br'],
    ['GZIP , Br', 'gzip, br'],
    ['gzip;q=0.5, gzip', 'gzip;q=0.5'],
    // `*` stands for the passable codings the browser did not name.
    ['*', 'gzip, br, zstd, deflate'],
    ['*;q=0.5, gzip', 'gzip, br;q=0.5, zstd;q=0.5, deflate;q=0.5'],
    ['*;q=0, gzip', 'gzip'],
    // A malformed weight refuses rather than prefers.
    ['gzip;q=abc, br', 'br'],
    ['gzip;q=2, br', 'br'],
  ])('%j asks the upstream for %j', (browser, upstream) => {
    expect(upstreamAcceptEncoding(browser)).toBe(upstream)
    // Twice: the memo answers the same.
    expect(upstreamAcceptEncoding(browser)).toBe(upstream)
  })

  it('asks only for what the transport can hand over (fetch: what it decodes)', () => {
    expect(upstreamAcceptEncoding('gzip, deflate, br, zstd', FETCH_DECODED_CODINGS)).toBe(
      'gzip, deflate, br'
    )
    expect(upstreamAcceptEncoding('zstd', FETCH_DECODED_CODINGS)).toBe('identity')
  })

  it('stays bounded whatever values clients send', () => {
    for (let i = 0; i < 1000; i++) upstreamAcceptEncoding(`gzip;q=0.${i % 1000}, x${i}`)
    expect(upstreamAcceptEncoding('br')).toBe('br')
  })
})

describe('browserAccepts', () => {
  it.each([
    ['gzip, br', 'gzip', true],
    ['gzip, br', 'br', true],
    ['gzip, br', 'deflate', false],
    ['gzip, br', 'gzip, br', true],
    ['gzip', 'gzip, br', false],
    ['gzip;q=0, br', 'gzip', false],
    ['x-gzip', 'gzip', true],
    ['gzip', 'x-gzip', true],
    ['*', 'zstd', true],
    ['*;q=0', 'gzip', false],
    ['*, gzip;q=0', 'gzip', false],
    ['gzip', 'identity', true],
    // A client that sends none gets a plain body.
    [undefined, 'gzip', false],
    ['', 'gzip', false],
  ])('%j accepts %j: %s', (accept, coding, expected) => {
    expect(browserAccepts(accept, coding)).toBe(expected)
  })
})

describe('varyOnAcceptEncoding', () => {
  it.each([
    [null, 'Accept-Encoding'],
    ['', 'Accept-Encoding'],
    ['Accept', 'Accept, Accept-Encoding'],
    ['accept-encoding', 'accept-encoding'],
    ['Origin, Accept-Encoding', 'Origin, Accept-Encoding'],
    ['*', '*'],
    ['X-Accept-Encoding-Like', 'X-Accept-Encoding-Like, Accept-Encoding'],
  ])('%j becomes %j', (vary, expected) => {
    expect(varyOnAcceptEncoding(vary)).toBe(expected)
  })
})
