/**
 * `npm run soak`: the bounded load test of test/outage/soak.ts, long. SOAK_SECONDS (default 180)
 * sets the measured time, SOAK_USERS and SOAK_CONNECTIONS the load. Exits 1 on any 5xx, lost
 * session, failed logout, leftover Redis session or heap growth beyond the tolerance.
 */
import { formatReport, runSoak, soakVerdict } from '../test/outage/soak.ts'

const number = (name: string, fallback: number) => {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`)
  return value
}

const report = await runSoak({
  seconds: number('SOAK_SECONDS', 180),
  users: number('SOAK_USERS', 6),
  connections: number('SOAK_CONNECTIONS', 8),
  progress: (line) => console.log(line),
})
console.log(formatReport(report))
const problems = soakVerdict(report)
for (const problem of problems) console.error(`soak: FAILED: ${problem}`)
console.log(problems.length ? 'soak: FAILED' : 'soak: passed')
process.exit(problems.length ? 1 : 0)
