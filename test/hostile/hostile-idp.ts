/**
 * A small OpenID Provider of our own that lies on request. It serves discovery, a JWKS, an
 * authorization endpoint that redirects straight back with a code (no login page), a token endpoint
 * (authorization_code with PKCE S256, refresh_token) and userinfo, and signs ID tokens with jose.
 * Behaving, it is a correct provider; `misbehave()` makes the next answers wrong in one chosen way,
 * so each test shows the BFF refusing exactly that lie. Node-only, loopback, plain http.
 */
import { createHash, randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose'

export interface SigningKey {
  kid: string
  privateKey: CryptoKey
  /** The public half as published in the JWKS. */
  jwk: JWK
}

/** One way of lying; fields combine, absent fields behave. */
export interface Misbehaviour {
  /** Rewrites the ID token claims just before signing (return the claims to sign). */
  claims?: (claims: Record<string, unknown>) => Record<string, unknown>
  /**
   * How the ID token is signed: `none` (alg none, no signature), `wrong-key` (a key the JWKS does
   * not hold, under the published kid), `no-kid` (a published key, but no kid in the header).
   */
  signing?: 'none' | 'wrong-key' | 'no-kid'
  /** The `iss` parameter of the authorization response; `null` leaves it out. */
  responseIss?: string | null
  /** The `sub` userinfo answers with. */
  userinfoSub?: string
  /** Extra discovery metadata, e.g. advertising `none` as a signing algorithm. */
  metadata?: Record<string, unknown>
}

export interface HostileIdp {
  issuer: string
  clientId: string
  clientSecret: string
  /** The subject every login gets. */
  sub: string
  /** Lie in this way from now on (replaces any earlier lie). */
  misbehave(lie: Misbehaviour): void
  /** Behave again. */
  behave(): void
  /** A fresh RSA key with a new kid, not yet published or used. */
  newKey(): Promise<SigningKey>
  /** The keys the JWKS publishes, in order. */
  publish(keys: SigningKey[]): void
  /** The key ID tokens are signed with (it need not be published). */
  signWith(key: SigningKey): void
  readonly keys: { published: SigningKey[]; signing: SigningKey }
  /** Requests per endpoint path since start. */
  readonly hits: Record<string, number>
  close(): Promise<void>
}

interface PendingCode {
  nonce?: string
  codeChallenge: string
  redirectUri: string
}

export async function startHostileIdp(
  options: { clientId?: string; clientSecret?: string; sub?: string } = {}
): Promise<HostileIdp> {
  const clientId = options.clientId ?? 'hostile-client'
  const clientSecret = options.clientSecret ?? randomBytes(24).toString('base64url')
  const sub = options.sub ?? 'hostile-user'
  const codes = new Map<string, PendingCode>()
  const accessTokens = new Map<string, string>()
  const refreshTokens = new Map<string, string>()
  const hits: Record<string, number> = {}
  let lie: Misbehaviour = {}

  const first = await newKey()
  let published: SigningKey[] = [first]
  let signing: SigningKey = first
  // Kept apart from the published set: signs under a published kid for the wrong-key case.
  const stranger = await newKey()

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      res.statusCode = 500
      res.end(String(err))
    })
  })
  server.keepAliveTimeout = 100
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', issuer)
    hits[url.pathname] = (hits[url.pathname] ?? 0) + 1
    switch (`${req.method} ${url.pathname}`) {
      case 'GET /.well-known/openid-configuration':
        return json(res, 200, {
          issuer,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
          userinfo_endpoint: `${issuer}/userinfo`,
          jwks_uri: `${issuer}/jwks`,
          response_types_supported: ['code'],
          subject_types_supported: ['public'],
          grant_types_supported: ['authorization_code', 'refresh_token'],
          id_token_signing_alg_values_supported: ['RS256'],
          code_challenge_methods_supported: ['S256'],
          token_endpoint_auth_methods_supported: ['client_secret_basic'],
          authorization_response_iss_parameter_supported: true,
          scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
          ...lie.metadata,
        })
      case 'GET /jwks':
        return json(res, 200, { keys: published.map((key) => key.jwk) })
      case 'GET /authorize':
        return authorize(url, res)
      case 'POST /token':
        return token(req, res)
      case 'GET /userinfo':
        return userinfo(req, res)
      default:
        return json(res, 404, { error: 'not_found' })
    }
  }

  function authorize(url: URL, res: ServerResponse) {
    const q = url.searchParams
    const redirectUri = q.get('redirect_uri')
    if (q.get('client_id') !== clientId || !redirectUri || q.get('response_type') !== 'code') {
      return json(res, 400, { error: 'invalid_request' })
    }
    if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
      return json(res, 400, { error: 'invalid_request', error_description: 'PKCE S256 required' })
    }
    const code = randomBytes(16).toString('base64url')
    codes.set(code, {
      nonce: q.get('nonce') ?? undefined,
      codeChallenge: q.get('code_challenge')!,
      redirectUri,
    })
    const back = new URL(redirectUri)
    back.searchParams.set('code', code)
    if (q.get('state')) back.searchParams.set('state', q.get('state')!)
    const iss = lie.responseIss === undefined ? issuer : lie.responseIss
    if (iss !== null) back.searchParams.set('iss', iss)
    res.writeHead(302, { location: back.href }).end()
  }

  async function token(req: IncomingMessage, res: ServerResponse) {
    if (!clientAuthenticated(req.headers.authorization)) {
      return json(res, 401, { error: 'invalid_client' })
    }
    const form = new URLSearchParams(await readBody(req))
    if (form.get('grant_type') === 'authorization_code') {
      const code = form.get('code') ?? ''
      const pending = codes.get(code)
      codes.delete(code) // one use, whatever happens
      const verifier = form.get('code_verifier') ?? ''
      const challenge = createHash('sha256').update(verifier).digest('base64url')
      if (
        !pending ||
        pending.redirectUri !== form.get('redirect_uri') ||
        challenge !== pending.codeChallenge
      ) {
        return json(res, 400, { error: 'invalid_grant' })
      }
      return json(res, 200, await issueTokens(pending.nonce, code))
    }
    if (form.get('grant_type') === 'refresh_token') {
      const owner = refreshTokens.get(form.get('refresh_token') ?? '')
      if (!owner) return json(res, 400, { error: 'invalid_grant' })
      refreshTokens.delete(form.get('refresh_token')!)
      // No ID token on refresh: OIDC Core 12.2 makes it optional.
      const tokens: Record<string, unknown> = await issueTokens(undefined, undefined)
      delete tokens.id_token
      return json(res, 200, tokens)
    }
    return json(res, 400, { error: 'unsupported_grant_type' })
  }

  // RFC 6749 2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded.
  function clientAuthenticated(header: string | undefined): boolean {
    const encoded = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? '')?.[1]
    if (!encoded) return false
    const [id = '', secret = ''] = Buffer.from(encoded, 'base64').toString().split(':')
    const decode = (part: string) => decodeURIComponent(part.replace(/\+/g, ' '))
    return decode(id) === clientId && decode(secret) === clientSecret
  }

  async function issueTokens(nonce: string | undefined, code: string | undefined) {
    const accessToken = randomBytes(24).toString('base64url')
    const refreshToken = randomBytes(24).toString('base64url')
    accessTokens.set(accessToken, sub)
    refreshTokens.set(refreshToken, sub)
    const now = Math.floor(Date.now() / 1000)
    let claims: Record<string, unknown> = {
      iss: issuer,
      sub,
      aud: clientId,
      iat: now,
      exp: now + 300,
      auth_time: now,
      at_hash: halfHash(accessToken),
      ...(code ? { c_hash: halfHash(code) } : {}),
      ...(nonce ? { nonce } : {}),
      name: 'Hostile User',
    }
    if (lie.claims) claims = lie.claims(claims)
    return {
      access_token: accessToken,
      token_type: 'Bearer',
      expires_in: 300,
      refresh_token: refreshToken,
      scope: 'openid profile offline_access',
      id_token: await idToken(claims),
    }
  }

  async function idToken(claims: Record<string, unknown>): Promise<string> {
    if (lie.signing === 'none') {
      const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')
      return `${part({ alg: 'none', typ: 'JWT' })}.${part(claims)}.`
    }
    const key = lie.signing === 'wrong-key' ? stranger : signing
    const header =
      lie.signing === 'no-kid'
        ? { alg: 'RS256', typ: 'JWT' }
        : { alg: 'RS256', typ: 'JWT', kid: signing.kid }
    return new SignJWT(claims).setProtectedHeader(header).sign(key.privateKey)
  }

  function userinfo(req: IncomingMessage, res: ServerResponse) {
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? ''
    const owner = accessTokens.get(bearer)
    if (!owner) {
      res.setHeader('www-authenticate', 'Bearer error="invalid_token"')
      return json(res, 401, { error: 'invalid_token' })
    }
    return json(res, 200, { sub: lie.userinfoSub ?? owner, name: 'Hostile User' })
  }

  return {
    issuer,
    clientId,
    clientSecret,
    sub,
    misbehave(next) {
      lie = next
    },
    behave() {
      lie = {}
    },
    newKey,
    publish(keys) {
      published = [...keys]
    },
    signWith(key) {
      signing = key
    },
    get keys() {
      return { published: [...published], signing }
    },
    hits,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const kid = randomBytes(8).toString('hex')
  return {
    kid,
    privateKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' },
  }
}

/** OIDC Core 3.1.3.6: the left half of SHA-256 (the hash of RS256), base64url. */
export function halfHash(value: string): string {
  const digest = createHash('sha256').update(value).digest()
  return digest.subarray(0, digest.length / 2).toString('base64url')
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(JSON.stringify(body))
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (body += chunk))
    req.on('end', () => resolve(body))
    req.on('error', reject)
  })
}
