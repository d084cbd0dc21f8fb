/**
 * The in-process single flight every refresh goes through: concurrent callers of one session
 * generation share one refresh, and nothing else is joined.
 */
import { describe, expect, it } from 'vitest'
import { singleFlight } from '../../../src/core/tokens/refresh-coordinator.ts'
import type { Session } from '../../../src/core/session/types.ts'
import { makeSession } from '../../../src/testing/store-contract.ts'

/** A refresh that counts its calls and settles when told to. */
function gatedRefresh() {
  let calls = 0
  let open: () => void = () => {}
  const gate = new Promise<void>((resolve) => (open = resolve))
  const refresh = async (session: Session): Promise<Session> => {
    calls++
    await gate
    return { ...session, accessToken: `token-${calls}`, generation: session.generation + 1 }
  }
  return { refresh, open: () => open(), calls: () => calls }
}

describe('singleFlight', () => {
  it('gives concurrent callers of one generation one refresh and its result', async () => {
    const coordinator = singleFlight()
    const session = makeSession()
    const { refresh, open, calls } = gatedRefresh()
    const pending = Array.from({ length: 20 }, () => coordinator.refreshOnce(session, refresh))
    open()
    const results = await Promise.all(pending)
    expect(calls()).toBe(1)
    expect(new Set(results.map((r) => r.accessToken))).toEqual(new Set(['token-1']))
  })

  it('keeps sessions and generations apart, and refreshes again once one settled', async () => {
    const coordinator = singleFlight()
    const session = makeSession()
    const { refresh, open, calls } = gatedRefresh()
    const both = [
      coordinator.refreshOnce(session, refresh),
      coordinator.refreshOnce({ ...session, generation: 2 }, refresh),
      coordinator.refreshOnce(makeSession(), refresh),
    ]
    open()
    await Promise.all(both)
    expect(calls()).toBe(3)
    await coordinator.refreshOnce(session, refresh)
    expect(calls()).toBe(4)
  })

  it('shares a failure with the callers that joined it, and lets the next call try again', async () => {
    const coordinator = singleFlight()
    const session = makeSession()
    let calls = 0
    const failing = async (): Promise<Session> => {
      calls++
      await new Promise((resolve) => setTimeout(resolve, 10))
      throw new Error('idp down')
    }
    const joined = [
      coordinator.refreshOnce(session, failing),
      coordinator.refreshOnce(session, failing),
    ]
    for (const call of joined) await expect(call).rejects.toThrow('idp down')
    expect(calls).toBe(1)
    await expect(coordinator.refreshOnce(session, failing)).rejects.toThrow('idp down')
    expect(calls).toBe(2)
  })
})
