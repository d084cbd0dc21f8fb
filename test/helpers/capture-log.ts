/** A logger for `deps.log` that keeps every line, so tests can search what the BFF logged. */
import type { Logger } from '../../src/core/observe/log.ts'

export interface CapturedLog {
  log: Logger
  /** Each call as the JSON line the default logger would print. */
  lines: string[]
  /** The lines that contain `needle`, for a precise failure message. */
  containing(needle: string): string[]
}

export function captureLog(): CapturedLog {
  const lines: string[] = []
  return {
    log: (level, event, fields) => {
      lines.push(JSON.stringify({ level, event, ...fields }))
    },
    lines,
    containing: (needle) => lines.filter((line) => line.includes(needle)),
  }
}
