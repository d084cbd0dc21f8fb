/**
 * `constantTimeEqual`, which checks the admin and metrics bearer tokens: equal strings only. That it
 * has no early exit is its construction (both sides hashed, then compared whole), not timed here:
 * no test depends on the machine's speed.
 */
import { describe, expect, it } from 'vitest'
import { constantTimeEqual } from '../../../src/core/policy/constant-time.ts'

describe('constantTimeEqual', () => {
  it('is true for equal strings only', async () => {
    const token = 'x'.repeat(40)
    expect(await constantTimeEqual(token, token)).toBe(true)
    expect(await constantTimeEqual(token, `${token}x`)).toBe(false)
    expect(await constantTimeEqual(token, token.slice(0, -1))).toBe(false)
    expect(await constantTimeEqual('', token)).toBe(false)
    expect(await constantTimeEqual(`${token.slice(0, -1)}y`, token)).toBe(false)
  })
})
