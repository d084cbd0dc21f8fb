/**
 * Property-based fuzzing of every route over raw HTTP: random and malformed methods, paths (encoded
 * traversal, overlong, null bytes, Unicode), query strings, cookies, headers and bodies. After every
 * request: no 5xx but the documented 502/503/504, no secret or token in the answer or the log, no
 * CORS grant, nothing proxied outside `/base/` of the one upstream, the canary never reached, and
 * an upstream call only for a request that passed the CSRF checks. At the end the server still
 * answers. `FUZZ_RUNS` sets the runs per property (default 400: 3,200 cases per store, 6,400 in
 * all, about 15 s), `FUZZ_SEED` replays a seed.
 */
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rawRequest, type RawRequest, type RawResponse } from '../helpers/raw-http.ts'
import { UPSTREAM_BASE, USER, startFuzzTarget, type FuzzTarget } from './target.ts'

const RUNS = Number(process.env.FUZZ_RUNS ?? 400)
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined

let target: FuzzTarget
let casesRun = 0
/** How often each route family answered each status: printed, so a run's coverage can be seen. */
const seen = new Map<string, number>()

afterAll(() => {
  const table = [...seen].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}=${n}`)
  console.log(`fuzz: ${casesRun} cases run (${RUNS} runs per property)\n${table.join(' ')}`)
})

// Placeholders stand for values known only at send time (the session changes after a logout).
const COOKIE = '{COOKIE}'
const SID = '{SID}'
const ADMIN = '{ADMIN}'
const CANARY = '{CANARY}'
const SELF = '{SELF}'

function materialise(text: string): string {
  return text
    .replaceAll(COOKIE, target.session.cookie)
    .replaceAll(SID, target.session.sid)
    .replaceAll(ADMIN, target.adminToken)
    .replaceAll(CANARY, new URL(target.canary.url).host)
    .replaceAll(SELF, `127.0.0.1:${target.port}`)
}

const ROUTES = [
  '/bff/login',
  '/bff/callback',
  '/bff/user',
  '/bff/logout',
  '/bff/backchannel',
  '/bff/health',
  '/bff/admin/sessions',
  '/bff/admin/',
  '/bff/',
  '/bff',
  '/bff/nope',
  '/api/',
  '/api/orders/1',
  '/api',
  '/apix/',
  '/unknown',
  '/',
  '/index.html',
]

const NASTY_SEGMENTS = [
  '..',
  '.',
  '%2e%2e',
  '%2E%2E',
  '.%2e',
  '%2e.',
  '%2f',
  '%2F',
  '%5c',
  '%5C',
  '\\',
  '..;',
  '..;x',
  '..%00',
  '%00',
  '\u0000',
  '%0d%0a',
  '%c0%ae%c0%ae',
  '%c0%af',
  '%e0%80%ae',
  '%25%32%65%25%32%65',
  '%252e%252e',
  '%ef%bc%8e%ef%bc%8e',
  '．．',
  '‥',
  '%e2%80%a5',
  `@${CANARY}`,
  CANARY,
  `http://${CANARY}`,
  'http:',
  '',
  ';',
  '%3f',
  '%23',
  '?',
  '#',
  '%',
  '%%',
  '%ff',
  '%u002e',
  'é',
  '\u202e',
  '\ud83d\ude00',
  'etc',
  'passwd',
  'package.json',
  'src',
]

const segment = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY_SEGMENTS) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 8 }) }
)
const separator = fc.constantFrom('/', '/', '/', '//', '\\', '%2f', '/./', '/../')

const path = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...ROUTES) },
  {
    weight: 6,
    arbitrary: fc
      .tuple(fc.constantFrom(...ROUTES), fc.array(fc.tuple(separator, segment), { maxLength: 6 }))
      .map(([route, rest]) => route + rest.map(([sep, seg]) => sep + seg).join('')),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `/${s}`) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom('/api/', '/bff/', '/'), fc.integer({ min: 1000, max: 20_000 }))
      .map(([route, n]) => route + 'a/'.repeat(n / 2)),
  },
  // Absolute-form and odd request targets.
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      `http://${CANARY}/api/x`,
      `http://${SELF}/api/x`,
      `http://${CANARY}/`,
      '*',
      `${CANARY}:80`,
      'api/x',
      ''
    ),
  }
)

const QUERY_KEYS = ['returnTo', 'prompt', 'state', 'code', 'iss', 'error', 'sid', 'sub', 'x']
const QUERY_VALUES = [
  '/',
  '/home?x=1#y',
  '//evil.example',
  'https://evil.example/',
  '/\\evil.example',
  '\\\\evil.example',
  'javascript:alert(1)',
  '/%2f%2fevil.example',
  '/.//evil.example',
  `http://${CANARY}/`,
  'none',
  'login',
  'login_required',
  SID,
  USER,
  '%00',
  '\u0000',
  '../..',
  'x'.repeat(3000),
]
const queryPart = fc.oneof(
  fc.constantFrom(...QUERY_VALUES).map(encodeURIComponent),
  fc.constantFrom(...QUERY_VALUES),
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 })
)
const query = fc.oneof(
  { weight: 2, arbitrary: fc.constant('') },
  {
    weight: 3,
    arbitrary: fc
      .array(fc.tuple(fc.oneof(fc.constantFrom(...QUERY_KEYS), fc.string()), queryPart), {
        minLength: 1,
        maxLength: 5,
      })
      .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
  }
)

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE', 'CONNECT']
const method = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...METHODS.slice(0, 6)) },
  { weight: 2, arbitrary: fc.constantFrom(...METHODS.slice(6), 'PROPFIND', 'QUERY') },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z]{1,10}$/) }
)

const optional = <T>(arb: fc.Arbitrary<T>, weight = 1) =>
  fc.oneof({ weight, arbitrary: fc.constant(undefined) }, { weight: 2, arbitrary: arb })

const cookie = fc.oneof(
  fc.constant(COOKIE),
  fc.constant(`${COOKIE}; bff=garbage`),
  fc.constant(`bff=garbage; ${COOKIE}`),
  fc.constant('bff=Fe26.2**garbage*1*2*3'),
  fc.constant('bff=; bff.1=x; bff.2=y'),
  fc.constant(`${COOKIE}.tampered`),
  fc.constant('bff-tx.abc=Fe26.2**x; bff-tx.def=%%%'),
  fc.constant(`bff=${'A'.repeat(8000)}`),
  fc.constant(Array.from({ length: 60 }, (_, i) => `bff-tx.${i}=x`).join('; ')),
  fc.string({ maxLength: 60 }).map((s) => `bff=${s}`),
  fc.string({ unit: 'binary', maxLength: 60 })
)

const headerSet = fc.record(
  {
    host: fc.oneof(
      { weight: 6, arbitrary: fc.constant(SELF) },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          CANARY,
          'evil.example',
          '',
          '[::1]',
          'localhost',
          `${SELF}@${CANARY}`,
          'a'.repeat(600)
        ),
      },
      { weight: 1, arbitrary: fc.string({ maxLength: 30 }) }
    ),
    cookie: optional(cookie),
    'x-csrf': optional(fc.constantFrom('1', '1', '0', 'true', '', '1, 1', ' 1')),
    'sec-fetch-site': optional(
      fc.constantFrom('cross-site', 'same-origin', 'same-site', 'none', 'CROSS-SITE', 'x'),
      3
    ),
    origin: optional(fc.constantFrom('https://evil.example', 'null', `http://${SELF}`), 3),
    'content-type': optional(
      fc.constantFrom(
        'application/x-www-form-urlencoded',
        'application/json',
        'text/plain',
        'multipart/form-data; boundary=x',
        'application/x-www-form-urlencoded; charset=utf-7',
        '*/*'
      )
    ),
    accept: optional(fc.constantFrom('text/html', 'application/json', '*/*', 'text/html;q=0')),
    authorization: optional(
      fc.constantFrom(`Bearer ${ADMIN}`, 'Bearer wrong', 'Bearer ', 'Basic Zm9vOmJhcg=='),
      3
    ),
    'x-forwarded-host': optional(fc.constantFrom(CANARY, 'evil.example'), 4),
    'x-forwarded-proto': optional(fc.constantFrom('https', 'gopher'), 4),
    'x-forwarded-for': optional(fc.constantFrom('1.2.3.4', '::1, evil'), 4),
    forwarded: optional(fc.constant(`for=1.2.3.4;host=${CANARY};proto=https`), 4),
    'access-control-request-method': optional(fc.constantFrom('POST', 'DELETE'), 4),
    'access-control-request-headers': optional(
      fc.constantFrom('x-csrf', 'x-csrf, content-type'),
      4
    ),
  },
  { requiredKeys: ['host'] }
)

// Header names a raw client must not vary: they decide framing and when the answer ends.
const FRAMING = /^(connection|content-length|transfer-encoding|expect|upgrade|te)$/i
const extraHeaders = fc.array(
  fc.tuple(
    fc.stringMatching(/^[A-Za-z0-9-]{1,20}$/).filter((name) => !FRAMING.test(name)),
    fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }))
  ),
  { maxLength: 3 }
)

const body = fc.oneof(
  { weight: 4, arbitrary: fc.constant('') },
  { weight: 2, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 2, arbitrary: fc.json({ maxDepth: 3 }) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.string({ maxLength: 100 }),
        fc.constant('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'),
        fc.constant(`${'eyJ'.padEnd(300, 'A')}.${'A'.repeat(300)}.${'A'.repeat(342)}`)
      )
      .map((token) => `logout_token=${encodeURIComponent(token)}`),
  },
  { weight: 1, arbitrary: fc.constant(`logout_token=${'a'.repeat(70 * 1024)}`) }
)

interface Case {
  method: string
  path: string
  query: string
  headers: Record<string, string | undefined>
  extra: Array<[string, string]>
  body: string
  framing: RawRequest['framing']
  duplicateCsrf: boolean
  /**
   * Sent byte for byte. Otherwise bytes a request line cannot hold are percent-encoded and control
   * characters dropped from headers, so the request gets past Node's parser to the BFF.
   */
  raw: boolean
}

/** Percent-encodes what may not stand in a request target (by UTF-8 byte), leaving the rest. */
function targetSafe(text: string): string {
  let out = ''
  for (const ch of text) {
    if (/^[\x21-\x7e]$/.test(ch) && ch !== '#') out += ch
    else for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).padStart(2, '0')}`
  }
  return out
}

const headerSafe = (text: string) => text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '')

const anyCase = fc.record({
  method,
  path,
  query,
  headers: headerSet,
  extra: extraHeaders,
  body,
  framing: fc.constantFrom<RawRequest['framing']>('length', 'length', 'length', 'chunked', 'both'),
  duplicateCsrf: fc.oneof(
    { weight: 9, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) }
  ),
  raw: fc.oneof(
    { weight: 4, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) }
  ),
})

/** Sends a case and checks every invariant; returns the answer for property-specific checks. */
async function check(c: Case): Promise<RawResponse> {
  casesRun++
  const headers: Array<[string, string]> = []
  for (const [name, value] of Object.entries(c.headers)) {
    if (value !== undefined) headers.push([name, materialise(value)])
  }
  if (c.duplicateCsrf) headers.push(['x-csrf', '1'])
  headers.push(...c.extra)
  if (!c.raw) for (const header of headers) header[1] = headerSafe(header[1])
  // Node refuses unknown methods and Content-Length with chunked framing before the BFF sees them:
  // those shapes are sent raw only, so that most cases reach the BFF.
  const verb = c.raw || METHODS.includes(c.method) ? c.method : 'POST'
  const framing = c.raw || c.framing !== 'both' ? c.framing : 'length'
  const target_ = materialise(c.raw ? c.path + c.query : targetSafe(c.path + c.query))
  const bodyBytes = Buffer.from(c.body, 'utf8')
  const upstreamBefore = target.upstream.requests.length
  const logsBefore = target.logs.lines.length
  const sentCookie = headers.find(([n]) => n === 'cookie')?.[1]

  let response: RawResponse
  try {
    response = await rawRequest(target.port, {
      method: verb,
      target: target_,
      headers,
      body: bodyBytes,
      framing: bodyBytes.length ? framing : 'none',
    })
  } catch (err) {
    // Node hands CONNECT to a 'connect' listener; with none it closes the connection unanswered,
    // which is a refusal, not a failure. Every other request must get an answer.
    if (verb === 'CONNECT') {
      return { status: 0, headers: [], header: () => undefined, body: '', raw: '' }
    }
    throw new Error(`no answer to ${verb} ${JSON.stringify(target_)}: ${String(err)}`)
  }
  const where = `${verb} ${JSON.stringify(target_.slice(0, 200))} -> ${response.status}`
  const family = /^\/(bff\/[a-z]*|api|[a-z.]*)/.exec(target_)?.[0] ?? 'other'
  seen.set(`${family}:${response.status}`, (seen.get(`${family}:${response.status}`) ?? 0) + 1)

  // 1. Only documented server errors: 502/503/504, and 501 from the admin API in cookie mode
  //    (sessions that live only in browsers cannot be listed).
  const documented =
    [502, 503, 504].includes(response.status) ||
    (response.status === 501 && target.kind === 'cookie' && c.path.startsWith('/bff/admin/'))
  expect(response.status < 500 || documented, where).toBe(true)

  // 2. No secret or token in the answer (a logout's redirect to the IdP carries id_token_hint by
  //    design: the browser hands it to the IdP) or in anything logged while answering.
  const endSession = `${target.idp.issuer}/session/end`
  const visible = [
    ...response.headers
      .filter(([name, value]) => !(name === 'location' && value.startsWith(endSession)))
      .map(([name, value]) => `${name}: ${value}`),
    response.body,
  ].join('\n')
  const logged = target.logs.lines.slice(logsBefore).join('\n')
  for (const secret of target.secrets) {
    expect(visible.includes(secret), `${where}: the answer contains a secret`).toBe(false)
    expect(logged.includes(secret), `${where}: the log contains a secret`).toBe(false)
  }
  // Nothing from outside the static root: no /etc/passwd, no project file.
  expect(visible).not.toMatch(/root:x:0:0|"name": "bff-session-broker"|BFF_SESSION_SECRET/)

  // 3. CORS stays closed to everyone.
  expect(response.header('access-control-allow-origin'), where).toBeUndefined()
  expect(response.header('access-control-allow-credentials'), where).toBeUndefined()

  // 4. Proxying stays inside its route, with the token and without the browser's credentials.
  const reached = target.upstream.requests.slice(upstreamBefore)
  for (const request of reached) {
    expect(request.url.startsWith(UPSTREAM_BASE), `${where}: upstream got ${request.url}`).toBe(
      true
    )
    const pathname = new URL(request.url, 'http://upstream').pathname
    for (const part of pathname.split('/')) {
      let decoded = part
      try {
        decoded = decodeURIComponent(part)
      } catch {
        // a malformed escape reaches the upstream as text: it decodes to nothing dangerous
      }
      expect(['.', '..'].includes(decoded.split(';')[0]!), `${where}: dot segment`).toBe(false)
    }
    expect(request.headers.cookie, where).toBeUndefined()
    expect(request.headers['x-csrf'], where).toBeUndefined()
    expect(request.headers.authorization).toBe(`Bearer ${target.session.accessToken}`)
  }
  expect(target.canary.requests, `${where}: the canary was reached`).toEqual([])

  // 5. An upstream call only for a request that passed the CSRF checks with the real session.
  if (reached.length) {
    // As a server reads them: surrounding whitespace is not part of a value, repeats are joined.
    const joined = (name: string) =>
      headers
        .filter(([n]) => n === name)
        .map(([, v]) => v.trim())
        .join(', ')
    expect(joined('x-csrf'), where).toBe('1')
    expect(joined('sec-fetch-site'), where).not.toBe('cross-site')
    expect(sentCookie ?? '', where).toContain(target.session.cookie)
  }

  // A fuzzed logout or admin call may really end the session: log in again for the next case.
  if (/^\/bff\/(logout|admin)/.test(c.path)) await target.ensureSession()
  return response
}

// Both kinds of session the Node BFF keeps: server-side (the cookie holds an id) and cookie mode
// (the sealed session itself, chunked, with a revocation list).
describe.each(['memory', 'cookie'] as const)('fuzzing every route, %s store', (store) => {
  let casesBefore = 0
  beforeAll(async () => {
    target = await startFuzzTarget(store)
    casesBefore = casesRun
  }, 60_000)
  afterAll(() => target?.close())

  const options = (runs: number) => ({ numRuns: runs, seed: SEED, endOnFailure: true })

  it('any request to any route', async () => {
    await fc.assert(
      fc.asyncProperty(anyCase, async (c) => {
        await check(c)
      }),
      options(RUNS * 3)
    )
  }, 600_000)

  it('proxy paths with a valid session and CSRF header stay under their prefix', async () => {
    const proxyCase = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
      path: fc
        .array(fc.tuple(separator, segment), { minLength: 1, maxLength: 6 })
        .map((rest) => `/api${rest.map(([sep, seg]) => sep + seg).join('')}`),
      query,
      headers: fc.record({
        host: fc.constant(SELF),
        cookie: fc.constant(COOKIE),
        'x-csrf': fc.constant('1'),
        'content-type': fc.constant('application/json'),
      }),
      extra: fc.constant([] as Array<[string, string]>),
      body: fc.oneof(fc.constant(''), fc.json({ maxDepth: 2 })),
      framing: fc.constant<RawRequest['framing']>('length'),
      duplicateCsrf: fc.constant(false),
      raw: fc.constant(false),
    })
    let proxied = 0
    await fc.assert(
      fc.asyncProperty(proxyCase, async (c) => {
        const before = target.upstream.requests.length
        const response = await check(c)
        if (target.upstream.requests.length > before) proxied++
        // Either proxied, or refused as a bad path, or resolved out of /api/ by the URL parser.
        expect([200, 400, 404]).toContain(response.status)
      }),
      options(RUNS * 2)
    )
    expect(proxied).toBeGreaterThan(0) // the property reached the upstream, not only refusals
  }, 600_000)

  // The properties below hold most of a request well-formed and vary one part, so that more cases
  // get past the first check a route makes.
  const wellFormed = {
    extra: fc.constant([] as Array<[string, string]>),
    framing: fc.constant<RawRequest['framing']>('length'),
    duplicateCsrf: fc.constant(false),
    raw: fc.oneof(
      { weight: 9, arbitrary: fc.constant(false) },
      { weight: 1, arbitrary: fc.constant(true) }
    ),
  }

  it('cookies and CSRF headers on the session endpoints', async () => {
    const sessionCase = fc.record({
      method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
      path: fc.constantFrom('/bff/user', '/api/orders', '/bff/logout'),
      query: fc.constant(''),
      headers: fc.record(
        {
          host: fc.constant(SELF),
          cookie: optional(
            fc.oneof(
              { weight: 3, arbitrary: fc.constant(COOKIE) },
              { weight: 2, arbitrary: cookie }
            ),
            1
          ),
          'x-csrf': optional(fc.constantFrom('1', '1', '1', '0', '', '1, 1', 'yes'), 1),
          'sec-fetch-site': optional(fc.constantFrom('cross-site', 'same-origin', 'none'), 1),
          origin: optional(fc.constantFrom('https://evil.example', 'null', `http://${SELF}`), 1),
          accept: optional(fc.constantFrom('text/html', 'application/json')),
        },
        { requiredKeys: ['host'] }
      ),
      body: fc.constant(''),
      ...wellFormed,
    })
    await fc.assert(
      fc.asyncProperty(sessionCase, async (c) => {
        await check(c)
      }),
      options(RUNS)
    )
  }, 600_000)

  it('query strings on login, callback and logout', async () => {
    const queryCase = fc.record({
      method: fc.constant('GET'),
      path: fc.constantFrom('/bff/login', '/bff/callback', '/bff/logout', '/bff/admin/sessions'),
      query,
      headers: fc.record(
        {
          host: fc.constant(SELF),
          cookie: optional(fc.constantFrom(COOKIE, 'bff-tx.abc=Fe26.2**x')),
          accept: optional(fc.constantFrom('text/html', 'application/json')),
          authorization: optional(fc.constant(`Bearer ${ADMIN}`)),
        },
        { requiredKeys: ['host'] }
      ),
      body: fc.constant(''),
      ...wellFormed,
    })
    await fc.assert(
      fc.asyncProperty(queryCase, async (c) => {
        await check(c)
      }),
      options(RUNS)
    )
  }, 600_000)

  it('bodies on the back-channel, logout and the API', async () => {
    const bodyCase = fc.record({
      method: fc.constantFrom('POST', 'PUT', 'PATCH'),
      path: fc.constantFrom('/bff/backchannel', '/bff/logout', '/api/orders'),
      query: fc.constant(''),
      headers: fc.record(
        {
          host: fc.constant(SELF),
          cookie: optional(fc.constant(COOKIE), 3),
          'x-csrf': optional(fc.constant('1'), 3),
          'content-type': optional(
            fc.constantFrom(
              'application/x-www-form-urlencoded',
              'application/json',
              'text/plain',
              'multipart/form-data; boundary=x'
            ),
            3
          ),
        },
        { requiredKeys: ['host'] }
      ),
      body,
      ...wellFormed,
      framing: fc.constantFrom<RawRequest['framing']>('length', 'chunked'),
    })
    await fc.assert(
      fc.asyncProperty(bodyCase, async (c) => {
        await check(c)
      }),
      options(RUNS)
    )
  }, 600_000)

  it('the server is alive and the session works after the run', async () => {
    const health = await fetch(`${target.url}/bff/health`)
    expect(health.status).toBe(200)
    await target.ensureSession()
    const user = await fetch(`${target.url}/bff/user`, {
      headers: { cookie: target.session.cookie, 'x-csrf': '1' },
    })
    expect(user.status).toBe(200)
    expect(casesRun - casesBefore).toBeGreaterThanOrEqual(RUNS * 8)
  })
})
