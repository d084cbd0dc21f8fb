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

const DIFFERS = Symbol('differs')

/**
 * A copy of `value` made of `previous`'s strings: every string in `value` must equal the string at
 * the same place in `previous`, and it is that one the copy holds. Undefined when one does not (or
 * `value` holds anything but plain objects, arrays, strings, numbers, booleans and null).
 *
 * For a store rewriting what it holds, where only the numbers changed (a slid expiry): the copy
 * keeps no string of the caller's (one sliced from a larger text would keep that text alive, the
 * reason stores copy through structuredClone) and allocates no string again.
 */
export function copyWithStringsOf<T>(value: T, previous: unknown): T | undefined {
  const copy = sharing(value, previous)
  return copy === DIFFERS ? undefined : (copy as T)
}

function sharing(value: unknown, previous: unknown): unknown {
  if (typeof value === 'string') return value === previous ? previous : DIFFERS
  if (value === null || value === undefined) return value
  if (typeof value === 'number' || typeof value === 'boolean') return value
  if (typeof value !== 'object' || typeof previous !== 'object' || previous === null) return DIFFERS
  const proto = Object.getPrototypeOf(value)
  if (proto === Array.prototype) {
    const array = value as unknown[]
    if (!Array.isArray(previous)) return DIFFERS
    const out = new Array<unknown>(array.length)
    for (let i = 0; i < array.length; i++) {
      if (!(i in array)) continue
      const copied = sharing(array[i], previous[i])
      if (copied === DIFFERS) return DIFFERS
      out[i] = copied
    }
    return out
  }
  if (proto !== Object.prototype) return DIFFERS
  const out: Record<string, unknown> = {}
  const before = previous as Record<string, unknown>
  for (const key of Object.keys(value)) {
    // An own "__proto__" is rare enough to take structuredClone's way.
    if (key === '__proto__') return DIFFERS
    const copied = sharing(
      (value as Record<string, unknown>)[key],
      Object.hasOwn(before, key) ? before[key] : undefined
    )
    if (copied === DIFFERS) return DIFFERS
    out[key] = copied
  }
  return out
}
