/**
 * The established peer, side by side: Apache httpd with mod_auth_openidc (Debian's
 * `apache2` and `libapache2-mod-auth-openidc`), an OpenID-certified relying party that proxies with
 * the access token attached, configured as this BFF is: code flow with PKCE against the same IdP,
 * sessions in its shared-memory cache, `/api/` proxied to the same upstream with
 * `Authorization: Bearer`. An optional target: absent when Apache or the module is not installed.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { randomBytes } from 'node:crypto'
import { get } from 'node:http'
import { DEMO_BFF_CLIENT, bffClientMetadata, type Idp } from '../src/demo/idp.ts'
import { createCookieJar, redirectLocation } from '../test/helpers/http.ts'
import { loginAtIdp } from '../test/helpers/idp-login.ts'
import { freePort } from '../test/helpers/upstream.ts'
import type { Child } from './child.ts'
import { CSRF, timedGet } from './load.ts'

const HTTPD = '/usr/sbin/apache2'
const MODULES = '/usr/lib/apache2/modules'
const CLIENT_ID = 'bench-apache'

/** A GET over node:http: the status, Location and the cookies it sets (as a Cookie header). */
function rawGet(url: string, headers: Record<string, string>) {
  return new Promise<{ status: number; location?: string; cookies: string }>((resolve, reject) => {
    get(url, { headers, agent: false }, (res) => {
      res.resume()
      const cookies = (res.headers['set-cookie'] ?? []).map((line) => line.split(';')[0]).join('; ')
      const location = res.headers.location && new URL(res.headers.location, url).href
      resolve({ status: res.statusCode ?? 0, location, cookies })
    }).on('error', reject)
  })
}

export function apacheInstalled(): boolean {
  return existsSync(HTTPD) && existsSync(`${MODULES}/mod_auth_openidc.so`)
}

export interface Apache {
  url: string
  /** A fresh login's cookie header (and CSRF, which Apache ignores, so both get the same request). */
  headers(): Promise<Record<string, string>>
  stop(): Promise<void>
}

function config(dir: string, port: number, idp: Idp, upstream: string): string {
  const mod = (name: string, file: string) => `LoadModule ${name}_module ${MODULES}/mod_${file}.so`
  // Run as root (CI), Apache drops to www-data, which must read the directory.
  const user = process.getuid?.() === 0 ? 'User www-data\nGroup www-data' : ''
  return `
ServerRoot ${dir}
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
PidFile ${dir}/httpd.pid
ErrorLog ${dir}/error.log
LogLevel warn
Mutex file:${dir} default
${user}
${mod('mpm_event', 'mpm_event')}
${mod('authn_core', 'authn_core')}
${mod('authz_core', 'authz_core')}
${mod('authz_user', 'authz_user')}
${mod('headers', 'headers')}
${mod('proxy', 'proxy')}
${mod('proxy_http', 'proxy_http')}
${mod('auth_openidc', 'auth_openidc')}
# As many workers as the load has connections, over the machine's cores.
StartServers 2
ServerLimit 4
ThreadsPerChild 32
MaxRequestWorkers 128
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 65

OIDCProviderMetadataURL ${idp.issuer}/.well-known/openid-configuration
OIDCClientID ${CLIENT_ID}
OIDCClientSecret ${DEMO_BFF_CLIENT.clientSecret}
OIDCRedirectURI http://127.0.0.1:${port}/redirect_uri
OIDCCryptoPassphrase ${randomBytes(32).toString('hex')}
OIDCScope "openid profile email offline_access"
OIDCPKCEMethod S256
OIDCSessionType server-cache
OIDCCacheType shm
OIDCSessionInactivityTimeout 3600
OIDCProviderTokenEndpointAuth client_secret_basic

<Location /redirect_uri>
  AuthType openid-connect
  Require valid-user
</Location>
<Location /api/>
  AuthType openid-connect
  Require valid-user
  RequestHeader set Authorization "Bearer %{OIDC_access_token}e" env=OIDC_access_token
  RequestHeader unset Cookie
  ProxyPass ${upstream}/api/
</Location>
`
}

export async function startApache(idp: Idp, upstream: Child): Promise<Apache> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  await idp.addClient(
    bffClientMetadata({
      redirectUris: [`${url}/redirect_uri`],
      clientId: CLIENT_ID,
      clientSecret: DEMO_BFF_CLIENT.clientSecret,
      backchannelLogoutUri: null,
    })
  )
  const dir = await mkdtemp(path.join(tmpdir(), 'bench-apache-'))
  await chmod(dir, 0o755)
  const file = path.join(dir, 'httpd.conf')
  await writeFile(file, config(dir, port, idp, upstream.url))
  const httpd: ChildProcess = spawn(HTTPD, ['-f', file, '-DFOREGROUND'], { stdio: 'inherit' })
  const exited = new Promise((resolve) => httpd.once('exit', resolve))
  const stop = async () => {
    httpd.kill('SIGTERM')
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
    httpd.kill('SIGKILL')
    await rm(dir, { recursive: true, force: true })
  }
  // Listening once it answers.
  for (let i = 0; ; i++) {
    const { status } = await timedGet(`${url}/api/items`, {})
    // 401: Apache answers a request that does not accept HTML (an API call) without a redirect.
    if (status === 401) break
    if (i === 100 || httpd.exitCode !== null) {
      await stop()
      throw new Error(`Apache did not start (last answer ${status}); see ${dir}/error.log`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  let logins = 0
  return {
    url,
    async headers() {
      // As a browser navigates: Apache answers an API-like request (fetch always sends
      // `Sec-Fetch-Mode: cors`) with a 401 rather than a login, so Apache is spoken to over
      // node:http, and fetch's cookie jar only drives the IdP's pages.
      const navigate = {
        accept: 'text/html',
        'sec-fetch-mode': 'navigate',
        'sec-fetch-dest': 'document',
      }
      const start = await rawGet(`${url}/api/items`, navigate)
      if (start.status !== 302) throw new Error(`Apache answered ${start.status}, not a login`)
      const jar = createCookieJar({ baseUrl: idp.issuer })
      const user = { login: `${CLIENT_ID}-${logins++}`, password: 'pass' }
      const back = redirectLocation(await loginAtIdp(jar, start.location!, user))!.href
      const done = await rawGet(back, { ...navigate, cookie: start.cookies })
      if (done.status !== 302) throw new Error(`Apache's redirect_uri answered ${done.status}`)
      const cookie = done.cookies
      const check = await timedGet(`${url}/api/items`, { ...CSRF, cookie })
      if (check.status !== 200) throw new Error(`Apache answered ${check.status} after login`)
      return { ...CSRF, cookie }
    },
    stop,
  }
}
