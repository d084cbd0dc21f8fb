/**
 * Stores hand out and keep copies of sessions, so that a caller editing its object changes nothing
 * until it writes it back. structuredClone makes such a copy, but costs more than anything else a
 * memory-store lookup does: it serializes every string too (an ID token is a kilobyte) and
 * allocates the lot again. Sessions are JSON-shaped (they travel as JSON to Redis and into
 * cookies), and for plain objects, arrays and primitives a walk that shares the strings (they
 * cannot change) gives the same result several times faster. Anything else goes to
 * structuredClone, so the answer is always what structuredClone would give.
 */
export function copyValue<T>(value: T): T {
  if (typeof value !== 'object' || value === null) {
    // Functions and symbols: structuredClone refuses them, and so does this copy.
    return typeof value === 'function' || typeof value === 'symbol' ? structuredClone(value) : value
  }
  const proto = Object.getPrototypeOf(value)
  if (proto === Array.prototype) {
    const array = value as unknown[]
    const out = new Array<unknown>(array.length)
    for (let i = 0; i < array.length; i++) if (i in array) out[i] = copyValue(array[i])
    return out as T
  }
  if (proto !== Object.prototype) return structuredClone(value)
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value)) {
    const copied = copyValue((value as Record<string, unknown>)[key])
    // An own "__proto__" (JSON.parse makes one) stays a property instead of becoming the prototype.
    if (key === '__proto__') {
      Object.defineProperty(out, key, {
        value: copied,
        enumerable: true,
        writable: true,
        configurable: true,
      })
    } else out[key] = copied
  }
  return out as T
}
