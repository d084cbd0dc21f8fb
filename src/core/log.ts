/**
 * Structured logging with a hard rule: events, reasons and subject hashes only. Nothing that could
 * carry a token, a cookie or a secret is ever passed in, so nothing of the kind can come out.
 */
export type LogLevel = 'info' | 'warn' | 'error'
export type Logger = (
  level: LogLevel,
  event: string,
  fields?: Record<string, string | number | boolean | undefined>
) => void

/** One JSON object per line on stdout/stderr, the format log shippers expect. */
export const jsonLogger: Logger = (level, event, fields) => {
  const line = JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })
  if (level === 'error') console.error(line)
  else console.log(line)
}

export const silentLogger: Logger = () => {}

/** A stable, non-reversible handle on a user for logs: the first 16 hex digits of SHA-256(sub). */
export async function subjectHash(sub: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(sub))
  return [...new Uint8Array(digest).slice(0, 8)]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('')
}

/** The class and code of an error, for logs: never its message, which may quote a response. */
export function errorReason(err: unknown): string {
  if (err instanceof Error) {
    const code =
      (err as { code?: unknown; error?: unknown }).error ?? (err as { code?: unknown }).code
    return typeof code === 'string' ? `${err.name}:${code}` : err.name
  }
  return typeof err
}
