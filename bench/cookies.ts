/**
 * A browser's part of the session cookie, for load generators that hold thousands of sessions as
 * plain `Cookie` header strings (no jar object per session): an answer's `Set-Cookie` lines
 * applied to the header the next request of that session sends. The BFF slides a session's idle
 * expiry at most once a minute with a new cookie (and in `cookie` mode a new seal); a client that
 * kept sending the old one would make it slide again on every call, which no browser causes.
 */

/** `cookieHeader` (`a=1; b=2`) after the answer's `setCookie` lines, as a browser would send it next. */
export function applySetCookie(
  cookieHeader: string,
  setCookie: string | string[] | undefined
): string {
  if (!setCookie || !setCookie.length) return cookieHeader
  const jar = new Map<string, string>()
  for (const pair of cookieHeader ? cookieHeader.split('; ') : []) {
    const eq = pair.indexOf('=')
    jar.set(pair.slice(0, eq), pair.slice(eq + 1))
  }
  for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
    const [pair = '', ...attributes] = line.split(';')
    const eq = pair.indexOf('=')
    if (eq <= 0) continue
    const name = pair.slice(0, eq).trim()
    const value = pair.slice(eq + 1).trim()
    // A deletion: Max-Age=0 (or negative), or an Expires in the past.
    const removed = attributes.some((attribute) => {
      const [key = '', v = ''] = attribute.trim().split('=', 2)
      if (key.toLowerCase() === 'max-age') return Number(v) <= 0
      if (key.toLowerCase() === 'expires') return Date.parse(v) <= Date.now()
      return false
    })
    if (removed) jar.delete(name)
    else jar.set(name, value)
  }
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
}

/** The `set-cookie` lines of a header record whose names may be in any case (autocannon's raw ones). */
export function setCookieOf(
  headers: Record<string, string | string[] | undefined>
): string | string[] | undefined {
  for (const name in headers) if (name.toLowerCase() === 'set-cookie') return headers[name]
  return undefined
}

/** The session cookie (`bff`, on plain http) of a Cookie header, its chunks joined: the sealed value. */
export function sessionCookieValue(cookieHeader: string): string {
  const jar = new Map(
    cookieHeader.split('; ').map((pair) => pair.split('=', 2) as [string, string])
  )
  let sealed = jar.get('bff') ?? ''
  for (let i = 1; jar.has(`bff.${i}`); i++) sealed += jar.get(`bff.${i}`)
  return sealed
}
