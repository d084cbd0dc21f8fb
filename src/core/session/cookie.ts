import type { Context } from 'hono'
import { getCookie } from 'hono/cookie'

/**
 * Browsers drop cookies whose name, value and attributes pass 4096 bytes. Values above this size
 * are split over `name`, `name.1`, `name.2`, … so every Set-Cookie line stays well under the limit.
 */
export const CHUNK_SIZE = 3800
/** A sealed session that needs more chunks than this is refused rather than sent. */
export const MAX_CHUNKS = 8

export interface CookieAttributes {
  secure: boolean
  sameSite: 'Strict' | 'Lax'
  /** Seconds; 0 deletes the cookie. */
  maxAge: number
}

export function serializeCookie(name: string, value: string, attrs: CookieAttributes): string {
  let line = `${name}=${value}; Path=/; Max-Age=${Math.max(0, Math.floor(attrs.maxAge))}; HttpOnly`
  if (attrs.secure) line += '; Secure'
  return `${line}; SameSite=${attrs.sameSite}`
}

/** The value of a possibly chunked cookie, or undefined when absent or incomplete. */
export function readChunkedCookie(c: Context, name: string): string | undefined {
  const jar = getCookie(c)
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
 * Writes `value` as one or more chunks and deletes chunks the request carried beyond the new count,
 * so a shrinking session never leaves a stale tail that would corrupt the next read.
 */
export function writeChunkedCookie(
  c: Context,
  name: string,
  value: string,
  attrs: CookieAttributes
): void {
  const chunks: string[] = []
  for (let i = 0; i < value.length; i += CHUNK_SIZE) chunks.push(value.slice(i, i + CHUNK_SIZE))
  if (chunks.length > MAX_CHUNKS) {
    throw new Error(`sealed cookie of ${value.length} bytes exceeds ${MAX_CHUNKS} chunks`)
  }
  chunks.forEach((chunk, i) => {
    c.header('Set-Cookie', serializeCookie(chunkName(name, i), chunk, attrs), { append: true })
  })
  deleteChunks(c, name, attrs, chunks.length)
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
  const jar = getCookie(c)
  for (let i = from; i < MAX_CHUNKS; i++) {
    const chunk = chunkName(name, i)
    if (jar[chunk] === undefined) continue
    c.header('Set-Cookie', serializeCookie(chunk, '', { ...attrs, maxAge: 0 }), { append: true })
  }
}

function chunkName(name: string, index: number): string {
  return index === 0 ? name : `${name}.${index}`
}
