/**
 * Request headers on Node without a WHATWG Headers object per request. @hono/node-server builds
 * one from the raw header lines the first time anything reads a header, checking every byte of
 * every value on the way, a 3 KB session cookie included: several microseconds per request, for a
 * proxied call that reads three headers. `withRawHeaders` hands the app a Headers whose `get` and
 * `has` read the raw lines directly (Node's parser has already checked them), and which fills
 * itself completely before anything else is done with it (iterating, changing, copying it into
 * another Headers, a Request or a fetch), so it answers exactly as node-server's own would.
 */
import { IncomingMessage } from 'node:http'

// RFC 9110 field names; anything else goes to Headers itself, which refuses it as it always does.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * A Headers that answers from a source of its own until something changes it: then it fills
 * itself from that source once and is a plain Headers from there on.
 */
abstract class LazyHeaders extends Headers {
  /** Copies the source into the Headers itself, once; from then on reads go to Headers. */
  protected abstract fill(): void

  override set(name: string, value: string): void {
    this.fill()
    super.set(name, value)
  }

  override append(name: string, value: string): void {
    this.fill()
    super.append(name, value)
  }

  override delete(name: string): void {
    this.fill()
    super.delete(name)
  }

  override getSetCookie(): string[] {
    this.fill()
    return super.getSetCookie()
  }

  override [Symbol.iterator](): HeadersIterator<[string, string]> {
    return this.entries()
  }
}

export class RawHeaders extends LazyHeaders {
  #raw: string[] | undefined

  constructor(raw: string[]) {
    super()
    this.#raw = raw
  }

  protected fill(): void {
    const raw = this.#raw
    if (!raw) return
    this.#raw = undefined
    for (let i = 0; i < raw.length; i += 2) super.append(raw[i]!, raw[i + 1]!)
  }

  override get(name: string): string | null {
    const raw = this.#raw
    if (!raw || !TOKEN.test(name)) {
      this.fill()
      return super.get(name)
    }
    const wanted = name.toLowerCase()
    // Repeated lines are joined as Headers joins them: cookies with "; ", the rest with ", ".
    const separator = wanted === 'cookie' ? '; ' : ', '
    let value: string | null = null
    for (let i = 0; i < raw.length; i += 2) {
      const key = raw[i]!
      if (key.length !== wanted.length || key.toLowerCase() !== wanted) continue
      value = value === null ? raw[i + 1]! : value + separator + raw[i + 1]!
    }
    return value
  }

  override has(name: string): boolean {
    if (!this.#raw || !TOKEN.test(name)) {
      this.fill()
      return super.has(name)
    }
    return this.get(name) !== null
  }

  override forEach(
    callback: (value: string, key: string, parent: Headers) => void,
    thisArg?: unknown
  ): void {
    this.fill()
    super.forEach(callback, thisArg)
  }

  override entries(): HeadersIterator<[string, string]> {
    this.fill()
    return super.entries()
  }

  override keys(): HeadersIterator<string> {
    this.fill()
    return super.keys()
  }

  override values(): HeadersIterator<string> {
    this.fill()
    return super.values()
  }
}

/**
 * `req` (a @hono/node-server request) with headers read lazily from the raw lines of `incoming`.
 * Only plain HTTP/1 requests: anything else is returned as it is.
 */
export function withRawHeaders(req: Request, incoming: unknown): Request {
  if (incoming instanceof IncomingMessage) {
    Object.defineProperty(req, 'headers', {
      value: new RawHeaders(incoming.rawHeaders),
      configurable: true,
      enumerable: true,
    })
  }
  return req
}

/**
 * An upstream answer's headers, already cleaned into a record of lower-case names (upstream.ts),
 * as a Headers that reads that record until something changes it. Reading one header (the proxy
 * asks for `Content-Type`) or iterating them all (node-server writing the answer) then costs no
 * WHATWG Headers of its own: building one and iterating it again cost several µs a call.
 */
export class RecordHeaders extends LazyHeaders {
  #record: Record<string, string> | undefined
  /**
   * Set-Cookie lines appended while reading the record (the session cookie on a proxied answer,
   * when a call slides its session): kept beside it, so that they cost no Headers of their own.
   * The record never holds `set-cookie`: upstream.ts strips the upstream's.
   */
  #cookies: string[] = []

  constructor(record: Record<string, string>) {
    super()
    this.#record = record
  }

  protected fill(): void {
    const record = this.#record
    if (!record) return
    this.#record = undefined
    for (const name in record) super.append(name, record[name]!)
    for (const line of this.#cookies) super.append('set-cookie', line)
    this.#cookies = []
  }

  override append(name: string, value: string): void {
    // Only a value Headers would keep as it is (no surrounding whitespace to strip, nothing it
    // refuses); anything else goes through Headers itself.
    if (this.#record && name.toLowerCase() === 'set-cookie' && plainValue(value)) {
      this.#cookies.push(value)
      return
    }
    super.append(name, value)
  }

  override get(name: string): string | null {
    if (!this.#record) return super.get(name)
    const lower = name.toLowerCase()
    if (lower === 'set-cookie') return this.#cookies.length ? this.#cookies.join(', ') : null
    const value = this.#record[lower]
    return value === undefined ? null : value
  }

  override has(name: string): boolean {
    if (!this.#record) return super.has(name)
    return this.get(name) !== null
  }

  override getSetCookie(): string[] {
    return this.#record ? [...this.#cookies] : super.getSetCookie()
  }

  override forEach(
    callback: (value: string, key: string, parent: Headers) => void,
    thisArg?: unknown
  ): void {
    for (const [name, value] of this.entries()) callback.call(thisArg, value, name, this)
  }

  /** Sorted by name, each Set-Cookie line on its own, as Headers iterates. */
  override entries(): HeadersIterator<[string, string]> {
    if (!this.#record) return super.entries()
    return this.#list()[Symbol.iterator]() as unknown as HeadersIterator<[string, string]>
  }

  override keys(): HeadersIterator<string> {
    if (!this.#record) return super.keys()
    return this.#list()
      .map(([name]) => name)
      [Symbol.iterator]() as unknown as HeadersIterator<string>
  }

  override values(): HeadersIterator<string> {
    if (!this.#record) return super.values()
    return this.#list()
      .map(([, value]) => value)
      [Symbol.iterator]() as unknown as HeadersIterator<string>
  }

  /** The record and the Set-Cookie lines, as Headers would iterate them. */
  #list(): [string, string][] {
    const record = this.#record!
    const names = Object.keys(record)
    if (this.#cookies.length) names.push('set-cookie')
    const list: [string, string][] = []
    for (const name of names.sort()) {
      if (name === 'set-cookie') for (const line of this.#cookies) list.push([name, line])
      else list.push([name, record[name]!])
    }
    return list
  }
}

/** A header value Headers keeps unchanged: no surrounding whitespace, no CR, LF or NUL. */
function plainValue(value: string): boolean {
  return value === value.trim() && !/[\r\n\0]/.test(value)
}
