/**
 * Load while Redis fails over: proxied calls in a loop on every logged-in jar, and a writer
 * creating sessions through a store configured as the BFF's, from 500 ms before `failover` until
 * 2 s after `recovered` resolves. Answers what the calls and writes went through.
 */
import type { SessionStore } from '../../src/core/session/types.ts'
import { makeSession, sleep } from '../../src/testing/store-contract.ts'
import type { CookieJar } from './http.ts'

export interface FailoverOutcome {
  statuses: Map<number, number>
  /** The `error` of every answer that was not 200. */
  errors: Set<string>
  /** From the failover's start to the last answer that was not 200, ms; 0 if none. */
  windowMs: number
  /** The slowest call, ms. */
  slowestMs: number
  failed: number
  answered: number
  /** Sessions the writer was told were stored, and how many of those are gone afterwards. */
  acknowledged: number
  lost: number
}

export async function underLoad(parts: {
  jars: CookieJar[]
  store: SessionStore
  failover: () => Promise<void>
  recovered: () => Promise<void>
}): Promise<FailoverOutcome> {
  let running = true
  let failoverAt = Infinity
  let slowestMs = 0
  const answers: Array<{ at: number; status: number; error?: string }> = []
  const loops = parts.jars.map(async (jar, j) => {
    for (let i = 0; running; i++) {
      const started = Date.now()
      const response = await jar.get(`/api/load/${j}/${i}`, { headers: { 'x-csrf': '1' } })
      const body = await response.text()
      const at = Date.now()
      slowestMs = Math.max(slowestMs, at - started)
      if (response.status === 200) answers.push({ at, status: 200 })
      else answers.push({ at, status: response.status, error: errorOf(body) })
    }
  })
  const written: string[] = []
  const writes = (async () => {
    while (running) {
      const session = makeSession()
      try {
        await parts.store.set(session)
        written.push(session.id)
      } catch {
        // Not acknowledged: not counted as stored.
      }
      await sleep(5)
    }
  })()
  await sleep(500)
  failoverAt = Date.now()
  await parts.failover()
  await parts.recovered()
  await sleep(2000)
  running = false
  await Promise.all([...loops, writes])

  const failures = answers.filter((a) => a.status !== 200)
  const last = failures.at(-1)?.at
  const present = await Promise.all(written.map((id) => parts.store.get({ id })))
  const statuses = new Map<number, number>()
  for (const { status } of answers) statuses.set(status, (statuses.get(status) ?? 0) + 1)
  return {
    statuses,
    errors: new Set(failures.map((f) => f.error ?? '')),
    windowMs: last === undefined ? 0 : last - failoverAt,
    slowestMs,
    failed: failures.length,
    answered: answers.length,
    acknowledged: written.length,
    lost: present.filter((s) => s === null).length,
  }
}

function errorOf(body: string): string {
  try {
    return String((JSON.parse(body) as { error?: unknown }).error)
  } catch {
    return 'not json'
  }
}

/** One line for the test's output: the figures the README documents. */
export function describeOutcome(what: string, outcome: FailoverOutcome): string {
  const statuses = [...outcome.statuses].map(([status, n]) => `${status}: ${n}`).join(', ')
  return (
    `${what}: ${outcome.answered} proxied calls (${statuses}), window ${outcome.windowMs} ms, ` +
    `slowest call ${outcome.slowestMs} ms; ${outcome.acknowledged} sessions written, ` +
    `${outcome.lost} lost`
  )
}
