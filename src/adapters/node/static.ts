/**
 * The SPA on the Node server: static files from `BFF_SPA_DIR` at `/` and, with
 * `BFF_SPA_FALLBACK=true`, its `index.html` for browser navigations to client-side routes. The
 * BFF's own routes answer first; nothing here ever answers under `/bff/` or a proxied prefix.
 * Production serves no files unless told to; the demo (`npm start` without an IdP) passes its
 * `public/` (in a clone; the package does not ship it) as the default.
 */
import { serveStatic } from '@hono/node-server/serve-static'
import type { Env as HonoEnv, Hono, MiddlewareHandler } from 'hono'
import { accessSync, constants, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Env } from '../../core/config/env.ts'
import { SPA_SECURITY_HEADERS } from '../../core/pages.ts'

/** The demo SPA in the package's `public/`. */
export const DEMO_SPA_DIR = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../../public'
)

export interface SpaSettings {
  /** Absolute path of the directory served at `/`. @example '/srv/app/dist' */
  dir: string
  /** Answer `index.html` (200) to a navigation whose path is no file, for client-side routing. */
  fallback: boolean
}

/**
 * `BFF_SPA_DIR` (relative to the working directory) and `BFF_SPA_FALLBACK` from the environment;
 * `defaultDir` when `BFF_SPA_DIR` is unset. Problems are one line each, naming the setting, for
 * start.ts to report with the others.
 */
export function spaFromEnv(
  env: Env,
  defaultDir?: string
): { spa?: SpaSettings; problems: string[] } {
  const problems: string[] = []
  const given = env.BFF_SPA_DIR?.trim()
  const dir = given ? path.resolve(given) : defaultDir
  if (given) {
    const problem = unreadableDir(dir!)
    if (problem) problems.push(`BFF_SPA_DIR "${given}" ${problem}`)
  }
  const flag = env.BFF_SPA_FALLBACK?.trim().toLowerCase()
  if (flag && flag !== 'true' && flag !== 'false') {
    problems.push(`BFF_SPA_FALLBACK must be true or false, got "${env.BFF_SPA_FALLBACK}"`)
  }
  const fallback = flag === 'true'
  if (fallback && !dir) {
    problems.push(
      'BFF_SPA_FALLBACK=true needs BFF_SPA_DIR: the directory whose index.html it answers'
    )
  } else if (fallback && problems.length === 0 && !isFile(path.join(dir!, 'index.html'))) {
    problems.push(`BFF_SPA_FALLBACK=true needs an index.html in BFF_SPA_DIR "${given ?? dir}"`)
  }
  if (problems.length || !dir) return { problems }
  return { spa: { dir, fallback }, problems }
}

/**
 * Mounts the SPA after the BFF's routes: its files, the fallback, and the page headers on every
 * answer that has none of its own (the files, and the 404 of an address nothing serves).
 * `reserved`: path prefixes the SPA never answers, e.g. `['/bff/', '/api/']`.
 */
export function serveSpa<E extends HonoEnv>(
  app: Hono<E>,
  spa: SpaSettings,
  reserved: readonly string[]
): void {
  app.use('/*', spaHeaders)
  app.use('/*', spaFiles(spa, reserved))
}

const spaHeaders: MiddlewareHandler = async (c, next) => {
  await next()
  // An error page (the 404 page) brings its own, stricter headers.
  if (c.res.headers.has('Content-Security-Policy')) return
  for (const [name, value] of Object.entries(SPA_SECURITY_HEADERS)) c.header(name, value)
}

function spaFiles(spa: SpaSettings, reserved: readonly string[]): MiddlewareHandler {
  const files = serveStatic({ root: spa.dir })
  const index = serveStatic({ root: spa.dir, path: 'index.html' })
  return async function spaFiles(c, next) {
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') return next()
    const pathname = c.req.path
    if (reserved.some((prefix) => pathname.startsWith(prefix)) || refused(pathname)) return next()
    let missing = false
    const found = await files(c, async () => {
      missing = true
    })
    if (!missing) return found
    if (spa.fallback && (c.req.header('Accept') ?? '').includes('text/html')) return index(c, next)
    return next()
  }
}

/**
 * Paths no file is served for, before serveStatic's own checks: dot segments and dotfiles (a
 * `.git` or `.env` left in the build output; `.well-known` stays reachable), backslashes, NUL, and
 * encoded characters Hono's path decoding leaves encoded (`%2F`, `%5C`, a stray `%`).
 */
function refused(pathname: string): boolean {
  if (/[\\%\0]|\/\//.test(pathname)) return true
  return pathname.split('/').some((segment) => segment.startsWith('.') && segment !== '.well-known')
}

function unreadableDir(dir: string): string | undefined {
  try {
    if (!statSync(dir).isDirectory()) return 'is not a directory'
    accessSync(dir, constants.R_OK | constants.X_OK)
    return undefined
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    return code === 'ENOENT' ? 'does not exist' : `cannot be read (${code})`
  }
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile()
  } catch {
    return false
  }
}
