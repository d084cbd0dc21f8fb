/**
 * Setup file of the workerd project: a failed test prints what the Worker logged last, since the
 * Worker's own log is otherwise swallowed (set BFF_TEST_WORKERD_LOG=1 to stream all of it).
 */
import { beforeEach } from 'vitest'
import { recentLogs } from './workerd.ts'

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    const lines = recentLogs(40)
    if (lines.length)
      console.error(`last ${lines.length} lines of the Worker's log:\n${lines.join('\n')}`)
  })
})
