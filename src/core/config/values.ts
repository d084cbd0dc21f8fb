/**
 * Small readers of option values shared by the options' rules (resolve.ts) and the IdPs' rules
 * (idp-options.ts): each reports what is wrong through `bad` and answers a usable value.
 */

/** localhost, 127.0.0.0/8 or [::1] (as `URL.hostname` spells it). */
export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname)
}

export function urlText(value: unknown): string | undefined {
  if (value instanceof URL) return value.href
  return typeof value === 'string' ? value.trim() : undefined
}

export function requiredText(value: unknown, bad: (why: string) => void, what: string): string {
  if (value === undefined) {
    bad(`is required: ${what}`)
    return ''
  }
  if (typeof value !== 'string' || !value.trim()) {
    bad('must be a non-empty string')
    return ''
  }
  return value.trim()
}

export function oneOf<T extends string>(
  value: unknown,
  fallback: T,
  choices: readonly T[],
  bad: (why: string) => void
): T {
  if (value === undefined) return fallback
  if (!choices.includes(value as T)) {
    bad(`must be one of ${choices.join(', ')}, got "${String(value)}"`)
    return fallback
  }
  return value as T
}
