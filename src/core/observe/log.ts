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

// Messages that are fixed text of the runtime, never a quote of a response: undici's for any
// fetch that failed to connect. Any other message stays out of the log.
const FIXED_MESSAGES = new Set(['fetch failed'])

/**
 * Why something failed, for logs: the error's class and code, e.g. `ClientError:OAUTH_TIMEOUT`, and
 * the first system error down its cause chain with the address it failed on, e.g.
 * `TypeError: fetch failed (ECONNREFUSED 127.0.0.1:9)`. Never a message (it may quote a response),
 * a URL or a token. Undefined when there is no cause, so the log line has no `reason` at all.
 */
export function errorReason(err: unknown): string | undefined {
  if (err === undefined || err === null) return undefined
  if (!(err instanceof Error)) return typeof err
  const code = safeCode((err as { error?: unknown }).error) ?? safeCode(codeOf(err))
  const label = code
    ? `${err.name}:${code}`
    : FIXED_MESSAGES.has(err.message)
      ? `${err.name}: ${err.message}`
      : err.name
  const system = systemError(err)
  if (!system) return label
  // An error that is itself the system error (Node's net errors) only adds where it failed.
  const detail = system.code === code ? system.where : `${system.code} ${system.where ?? ''}`.trim()
  return detail ? `${label} (${detail})` : label
}

type SystemError = Error & { address?: unknown; port?: unknown; hostname?: unknown }

/** The first system error (`ECONNREFUSED`, …) down a cause chain, and the address it failed on. */
function systemError(err: Error): { code: string; where?: string } | undefined {
  let cause: unknown = err
  for (let depth = 0; cause instanceof Error && depth < 8; depth++) {
    const code = safeCode(codeOf(cause))
    if (code && /^E[A-Z]+$/.test(code)) {
      // Connecting to a name with several addresses fails with an AggregateError of one per address.
      const failed = cause instanceof AggregateError ? (cause.errors[0] ?? cause) : cause
      return { code, where: address(failed as SystemError) }
    }
    cause = cause.cause
  }
  return undefined
}

/** `127.0.0.1:9`, `[::1]:9` or a host name: never a URL, so never a path, query or credentials. */
function address({ address, port, hostname }: SystemError): string | undefined {
  const host = typeof address === 'string' ? address : typeof hostname === 'string' ? hostname : ''
  if (!/^[\w.:-]{1,255}$/.test(host)) return undefined
  const shown = host.includes(':') ? `[${host}]` : host
  return typeof port === 'number' ? `${shown}:${port}` : shown
}

function codeOf(err: Error): unknown {
  return (err as { code?: unknown }).code
}

// A code comes from a library or the system, or (an OAuth `error`) from the IdP's answer: only a
// short token-like word is shown, never free text.
function safeCode(code: unknown): string | undefined {
  return typeof code === 'string' && /^[\w.-]{1,64}$/.test(code) ? code : undefined
}
