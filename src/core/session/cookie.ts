import type { Context } from 'hono'
import { COOKIE_PREFIXES } from './cookie-names.ts'

/**
 * Browsers drop cookies whose name, value and attributes pass 4096 bytes. Values above this size
 * are split over `name`, `name.1`, `name.2`, … so every Set-Cookie line stays well under the limit.
 */
export const CHUNK_SIZE = 3800
/** A sealed session that needs more chunks than this is refused rather than sent. */
export const MAX_CHUNKS = 8
/** Browsers cap Max-Age at 400 days (RFC 6265bis), and hono's serializer refuses more. */
const MAX_AGE_SECONDS = 400 * 24 * 3600
const HOST_PREFIX = '__Host-'
/** What `encodeURIComponent` leaves alone. Seals (base64url, `*`, `~`, `.`) are all of it. */
const COOKIE_SAFE = /^[\w.!~*'()-]*$/
/** Cookie names hono can write (RFC 6265 tokens). */
const COOKIE_NAME = /^[\w!#$%&'*.^`|~+-]+$/

export interface CookieAttributes {
  secure: boolean
  sameSite: 'Strict' | 'Lax'
  /** Seconds; 0 deletes the cookie. */
  maxAge: number
}

/**
 * Adds a Set-Cookie line, also once the response exists (a proxied upstream answer): Hono's
 * c.header would then re-wrap the response around its streaming body on every call.
 */
export function appendSetCookie(c: Context, line: string): void {
  if (c.finalized) c.res.headers.append('Set-Cookie', line)
  else c.header('Set-Cookie', line, { append: true })
}

/**
 * One `HttpOnly`, `Path=/` Set-Cookie line, as hono's `generateCookie` writes it (a test holds the
 * two to the same bytes). A `__Host-` name always gets `Secure` and `Path=/` and never a `Domain`,
 * so the browser cannot refuse the cookie (nor a sibling subdomain shadow it) whatever `attrs` say.
 * Values must be what URL-encoding leaves as it is, as seals are: the line is then the bytes the
 * budgets count, and the value reads back as written. Others are refused. Written here rather
 * than by hono, whose `encodeURIComponent` and checks of each attribute cost some 30 µs a line
 * for a 2 KB seal, on every call that slides a `cookie` session.
 */
export function serializeCookie(name: string, value: string, attrs: CookieAttributes): string {
  if (!COOKIE_NAME.test(name)) throw new TypeError(`${name} is not a cookie name`)
  if (!COOKIE_SAFE.test(value)) {
    throw new TypeError(`the value of cookie ${name} is not cookie-safe`)
  }
  const secure = attrs.secure || name.startsWith(HOST_PREFIX)
  if (!secure && /^__secure-/i.test(name)) throw new TypeError(`${name} must be Secure`)
  const maxAge = Math.min(MAX_AGE_SECONDS, Math.max(0, Math.floor(attrs.maxAge)))
  return (
    `${name}=${value}; Max-Age=${maxAge}; Path=/; HttpOnly` +
    `${secure ? '; Secure' : ''}; SameSite=${attrs.sameSite}`
  )
}

/** Whether `name` can be written as a cookie name; a name that cannot is not one of ours. */
export function isCookieName(name: string): boolean {
  return COOKIE_NAME.test(name)
}

const parsed = new WeakMap<Request, Readonly<Record<string, string>>>()
const NO_COOKIES: Readonly<Record<string, string>> = Object.freeze(Object.create(null))

/**
 * The request's cookies of the BFF (names starting with one of `COOKIE_PREFIXES`), name -> value
 * as sent (see `cookiesNamed`). Parsed once per request, however many parts ask: the session and
 * its chunks, login transactions, the logged-out marker.
 */
export function requestCookies(c: Context): Readonly<Record<string, string>> {
  let jar = parsed.get(c.req.raw)
  if (!jar) {
    const header = c.req.header('Cookie')
    jar = header ? cookiesNamed(header, COOKIE_PREFIXES) : NO_COOKIES
    parsed.set(c.req.raw, jar)
  }
  return jar
}

/**
 * The value of a possibly chunked cookie of the BFF (see `requestCookies`), or undefined when
 * absent or incomplete.
 */
export function readChunkedCookie(c: Context, name: string): string | undefined {
  const jar = requestCookies(c)
  const first = jar[name]
  if (!first) return undefined
  let value = first
  for (let i = 1; i < MAX_CHUNKS; i++) {
    const chunk = jar[`${name}.${i}`]
    if (chunk === undefined) break
    value += chunk
  }
  return value
}

/**
 * The cookies of a Cookie header whose names start with `prefix` (or one of several; `''` for
 * all), the first of each name winning, unquoted, otherwise as sent: what hono's parser answers
 * for the values the BFF writes (test/core/session/cookie.test.ts checks it). The session cookie
 * is a 3–8 KB seal on every request, and hono's parser checks every character against the cookie
 * grammar and URI-decodes it: ~8 µs for 6 KB of cookies where this takes under 1. Nothing is
 * lost: a value that is not a seal fails to unseal, and the BFF's own values have nothing to decode.
 */
export function cookiesNamed(
  header: string,
  prefix: string | readonly string[]
): Record<string, string> {
  const found: Record<string, string> = Object.create(null)
  const prefixes = typeof prefix === 'string' ? [prefix] : prefix
  if (!prefixes.some((p) => header.includes(p))) return found
  for (let start = 0; start < header.length;) {
    let end = header.indexOf(';', start)
    if (end === -1) end = header.length
    const eq = header.indexOf('=', start)
    if (eq !== -1 && eq < end) {
      const key = header.slice(start, eq).trim()
      if (!(key in found) && startsWithAny(key, prefixes)) {
        let value = header.slice(eq + 1, end).trim()
        if (value.startsWith('"') && value.endsWith('"')) {
          value = value.slice(1, -1)
        }
        found[key] = value
      }
    }
    start = end + 1
  }
  return found
}

function startsWithAny(key: string, prefixes: readonly string[]): boolean {
  for (const prefix of prefixes) if (key.startsWith(prefix)) return true
  return false
}

/** Limits on what one response may set: per Set-Cookie line, and all lines together. */
export interface CookieBudget {
  maxCookieBytes: number
  maxTotalBytes: number
}

/** The value does not fit the budget; nothing was written. */
export class CookieTooLargeError extends Error {
  constructor(readonly bytes: number) {
    super(`cookie of ${bytes} bytes exceeds the budget`)
    this.name = 'CookieTooLargeError'
  }
}

/**
 * The Set-Cookie lines of `value` written as one or more chunks: each within
 * `budget.maxCookieBytes` and all of them within `budget.maxTotalBytes`, or CookieTooLargeError.
 */
export function chunkedCookieLines(
  name: string,
  value: string,
  attrs: CookieAttributes,
  budget?: CookieBudget
): string[] {
  // The longest name and attributes a chunk line can have, so every line fits.
  const overhead = serializeCookie(chunkName(name, MAX_CHUNKS), '', attrs).length
  const size = budget ? Math.min(CHUNK_SIZE, budget.maxCookieBytes - overhead) : CHUNK_SIZE
  const lines: string[] = []
  for (let i = 0; i * size < value.length; i++) {
    lines.push(serializeCookie(chunkName(name, i), value.slice(i * size, (i + 1) * size), attrs))
  }
  const bytes = lines.reduce((sum, line) => sum + line.length, 0)
  if (lines.length > MAX_CHUNKS || (budget && bytes > budget.maxTotalBytes)) {
    throw new CookieTooLargeError(bytes)
  }
  return lines
}

/**
 * Writes `value` as one or more chunks and deletes chunks the request carried beyond the new count,
 * so a shrinking session never leaves a stale tail that would corrupt the next read. With a budget,
 * each Set-Cookie line stays within `maxCookieBytes` and all of them within `maxTotalBytes`, or
 * nothing is written and CookieTooLargeError is thrown: better a clear error than a cookie the
 * browser silently drops. Returns the bytes of the Set-Cookie lines written.
 */
export function writeChunkedCookie(
  c: Context,
  name: string,
  value: string,
  attrs: CookieAttributes,
  budget?: CookieBudget
): number {
  const lines = chunkedCookieLines(name, value, attrs, budget)
  for (const line of lines) appendSetCookie(c, line)
  deleteChunks(c, name, attrs, lines.length)
  // The chunk after the last is deleted even when this request did not carry it: a concurrent
  // answer for the same session may have written more chunks, and if it reaches the browser
  // first, its tail would be joined to this value and the session lost. Reading stops at the
  // first missing chunk, so this one deletion makes any later stale chunk harmless.
  const next = chunkName(name, lines.length)
  if (lines.length < MAX_CHUNKS && requestCookies(c)[next] === undefined) {
    appendSetCookie(c, serializeCookie(next, '', { ...attrs, maxAge: 0 }))
  }
  return lines.reduce((sum, line) => sum + line.length, 0)
}

/** Deletes the cookie and every chunk of it the request carried, starting at chunk `from`. */
export function deleteChunkedCookie(
  c: Context,
  name: string,
  attrs: Omit<CookieAttributes, 'maxAge'>
) {
  deleteChunks(c, name, { ...attrs, maxAge: 0 }, 0)
}

function deleteChunks(c: Context, name: string, attrs: CookieAttributes, from: number) {
  const jar = requestCookies(c)
  for (let i = from; i < MAX_CHUNKS; i++) {
    const chunk = chunkName(name, i)
    if (jar[chunk] === undefined) continue
    appendSetCookie(c, serializeCookie(chunk, '', { ...attrs, maxAge: 0 }))
  }
}

function chunkName(name: string, index: number): string {
  return index === 0 ? name : `${name}.${index}`
}

/**
 * The longest session JSON that still fits `budget` once sealed: iron adds ~200 bytes and base64
 * grows it by a third; each chunk line adds its name and attributes (~100 bytes), and there are
 * at most MAX_CHUNKS lines, which a small `maxCookieBytes` reaches well before `maxTotalBytes`.
 * A 5% margin absorbs the rest.
 */
export function maxInlineJsonBytes(budget: CookieBudget): number {
  const lines = Math.min(MAX_CHUNKS, Math.ceil(budget.maxTotalBytes / budget.maxCookieBytes))
  const perLine = Math.min(CHUNK_SIZE, budget.maxCookieBytes - 100)
  const sealed = Math.min(budget.maxTotalBytes - lines * 100, lines * perLine)
  return Math.floor((((sealed - 200) * 3) / 4) * 0.95)
}

/** Bytes of every Set-Cookie line of a response. */
export function setCookieBytes(headers: Headers): number {
  return headers.getSetCookie().reduce((sum, line) => sum + line.length, 0)
}
