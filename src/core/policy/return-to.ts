// Control characters, backslashes (browsers read "\" as "/") and anything that is not printable ASCII
// once decoded is refused outright rather than normalised: a return path never needs them.
const UNSAFE_PATH_CHARS = /[\u0000-\u001f\u007f\\]/

/**
 * Returns `returnTo` as a same-origin relative path (path, query and fragment), or null when it
 * could lead anywhere else: absolute URLs, scheme-relative `//host`, `/\host`, control characters.
 */
export function safeReturnTo(returnTo: string | undefined, baseUrl: string): string | null {
  if (returnTo === undefined || returnTo === '') return '/'
  if (returnTo.length > 2048) return null
  if (!returnTo.startsWith('/') || returnTo.startsWith('//')) return null
  if (UNSAFE_PATH_CHARS.test(returnTo)) return null
  // Decoding catches "%5c" or "%2f%2f" tricks aimed at servers that decode before redirecting.
  let decoded: string
  try {
    decoded = decodeURIComponent(returnTo)
  } catch {
    return null
  }
  if (decoded.startsWith('//') || UNSAFE_PATH_CHARS.test(decoded)) return null
  const base = new URL(baseUrl)
  const resolved = new URL(returnTo, base)
  if (resolved.origin !== base.origin) return null
  // Dot segments can turn "/.//evil.com" into the path "//evil.com", which a browser would read as
  // another host once it is sent back as a Location.
  const path = resolved.pathname + resolved.search + resolved.hash
  if (path.startsWith('//')) return null
  // Percent-encoded, non-ASCII text grows up to nine-fold: the path goes into the transaction
  // cookie, which must stay within what a browser keeps.
  if (path.length > 2048) return null
  return path
}
