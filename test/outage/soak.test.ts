/**
 * The soak, short: the same mix as `npm run soak` (logins through the IdP pages, API calls,
 * refreshes every few seconds, logouts, autocannon load) for SOAK_SECONDS (default 15).
 */
import { expect, it } from 'vitest'
import { formatReport, runSoak, soakVerdict } from './soak.ts'

const SECONDS = Number(process.env.SOAK_SECONDS ?? 15)

it(
  `soak ${SECONDS} s: no 5xx, no lost session, memory flat`,
  async () => {
    const report = await runSoak({ seconds: SECONDS })
    console.log(formatReport(report))
    expect(report.logins).toBeGreaterThan(0)
    expect(report.logouts).toBeGreaterThan(0)
    expect(report.refreshes).toBeGreaterThan(0)
    expect(soakVerdict(report)).toEqual([])
  },
  (SECONDS * 2 + 60) * 1000
)
