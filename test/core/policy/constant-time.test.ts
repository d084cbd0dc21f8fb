/**
 * `constantTimeEqual`, which checks the admin and metrics bearer tokens: equal strings only, and
 * no early exit: a guess wrong in its first character takes as long as one wrong in its last, so
 * the time of a refusal does not tell an attacker how much of the token they got right.
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

  it('takes as long for a guess wrong at the start as for one wrong at the end', async () => {
    // Long strings make an early-exit compare's difference large (it stops at the first byte
    // versus reading a megabyte) against the machine's noise.
    const secret = 'a'.repeat(1 << 20)
    const wrongFirst = `b${secret.slice(1)}`
    const wrongLast = `${secret.slice(0, -1)}b`
    const time = async (guess: string) => {
      const started = performance.now()
      await constantTimeEqual(guess, secret)
      return performance.now() - started
    }
    const first: number[] = []
    const last: number[] = []
    for (let i = 0; i < 15; i++) {
      first.push(await time(wrongFirst))
      last.push(await time(wrongLast))
    }
    const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1]!
    const ratio = median(first) / median(last)
    // Comparing with `===` gives a ratio near 0.01; hashing both sides first, near 1.
    expect(ratio).toBeGreaterThan(0.5)
    expect(ratio).toBeLessThan(2)
  })
})
