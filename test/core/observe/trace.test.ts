import { describe, expect, it, vi } from 'vitest'
import {
  childContext,
  formatTraceparent,
  parseTraceparent,
  randomHex,
  traceHeaders,
} from '../../../src/core/observe/trace.ts'

const TRACE = '0af7651916cd43dd8448eb211c80319c'
const SPAN = 'b7ad6b7169203331'
const VALID = `00-${TRACE}-${SPAN}-01`

describe('parseTraceparent', () => {
  it('reads a valid version 00 header', () => {
    expect(parseTraceparent(VALID)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 1,
      remote: true,
    })
  })

  it('keeps the flags as sent', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)?.flags).toBe(0)
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-03`)?.flags).toBe(3)
  })

  it('keeps tracestate with a valid traceparent', () => {
    expect(parseTraceparent(VALID, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')?.state).toBe(
      'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'
    )
  })

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with more fields', `${VALID}-extra`],
    ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['a long trace id', `00-${TRACE}a-${SPAN}-01`],
    ['a short span id', `00-${TRACE}-${SPAN.slice(1)}-01`],
    ['a long span id', `00-${TRACE}-${SPAN}a-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero span id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['a one-digit version', `0-${TRACE}-${SPAN}-01`],
    ['a non-hex version', `0g-${TRACE}-${SPAN}-01`],
    ['non-hex flags', `00-${TRACE}-${SPAN}-0x`],
    ['three-digit flags', `00-${TRACE}-${SPAN}-001`],
    ['other separators', `00_${TRACE}_${SPAN}_01`],
    ['a later version without the dash after the flags', `01-${TRACE}-${SPAN}-01x`],
    ['far too long', `01-${TRACE}-${SPAN}-01-${'a'.repeat(600)}`],
  ])('ignores %s', (_, value) => {
    expect(parseTraceparent(value, 'congo=t61rcWkgMzE')).toBeUndefined()
  })

  it('reads a later version, its extra fields ignored, only the sampled flag kept', () => {
    expect(parseTraceparent(`cc-${TRACE}-${SPAN}-03-what-the-future-adds`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 1,
      remote: true,
    })
  })

  it('drops a malformed or oversized tracestate, keeping the traceparent', () => {
    expect(parseTraceparent(VALID, 'a=b\u0001')?.state).toBeUndefined()
    expect(parseTraceparent(VALID, `a=${'x'.repeat(600)}`)?.state).toBeUndefined()
    const members = Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')
    expect(parseTraceparent(VALID, members)?.state).toBeUndefined()
    expect(parseTraceparent(VALID, members)?.traceId).toBe(TRACE)
  })
})

describe('child contexts', () => {
  it('keeps the trace id, flags and state, with a new span id', () => {
    const parent = parseTraceparent(`00-${TRACE}-${SPAN}-00`, 'congo=t61rcWkgMzE')!
    const child = childContext(parent)
    expect(child.traceId).toBe(TRACE)
    expect(child.spanId).toMatch(/^[0-9a-f]{16}$/)
    expect(child.spanId).not.toBe(SPAN)
    expect(traceHeaders(child)).toEqual({
      traceparent: `00-${TRACE}-${child.spanId}-00`,
      tracestate: 'congo=t61rcWkgMzE',
    })
  })

  it('starts a new, sampled trace without a parent', () => {
    const a = childContext(undefined)
    const b = childContext(undefined)
    expect(a.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(a.traceId).not.toBe(b.traceId)
    expect(formatTraceparent(a)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/)
    expect(parseTraceparent(formatTraceparent(a))).toMatchObject({ traceId: a.traceId })
    expect(traceHeaders(a).tracestate).toBeUndefined()
  })

  it('draws ids that are never all zero', () => {
    for (let i = 0; i < 1000; i++) expect(randomHex(1)).not.toBe('00')
  })

  it('draws distinct lower-case hex ids across many pool refills, every digit in both places', () => {
    const ids = Array.from({ length: 2000 }, () => randomHex(16))
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/)
    expect(new Set(ids).size).toBe(ids.length)
    // A byte's digits written in the wrong order or from the wrong table would leave some out.
    for (const place of [0, 1]) {
      const seen = new Set(ids.map((id) => id[place]))
      expect(seen.size).toBe(16)
    }
  })

  it('takes the runtime’s own Uint8Array toHex where there is one (workerd), with the same ids', async () => {
    // Node 20 has none: a stand-in after the spec, so that the path workerd takes runs here too.
    const proto = Uint8Array.prototype as unknown as Record<string, unknown>
    let calls = 0
    proto.toHex = function (this: Uint8Array) {
      calls++
      return Buffer.from(this).toString('hex')
    }
    try {
      vi.resetModules()
      const fresh = (await import('../../../src/core/observe/trace.ts')).randomHex
      const ids = Array.from({ length: 600 }, () => fresh(16))
      for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/)
      expect(new Set(ids).size).toBe(ids.length)
      expect(calls).toBe(3) // 600 ids of 16 bytes: three 4 KiB fills
    } finally {
      delete proto.toHex
      vi.resetModules()
    }
  })
})
