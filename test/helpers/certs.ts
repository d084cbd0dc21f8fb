/**
 * Certificates for mutual TLS tests, made with the `openssl` CLI in a temporary directory: a CA, a
 * server certificate it signs (for `localhost` and 127.0.0.1), a client certificate it signs, and
 * a client certificate of another CA (the wrong one). EC P-256, valid for two days.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'

export interface KeyPair {
  cert: string
  key: string
}

export interface TestCertificates {
  /** The CA that signs the server and the right client. */
  ca: string
  server: KeyPair
  /** Signed by `ca`, CN `bff-client`. */
  client: KeyPair
  /** Signed by another CA, CN `intruder`. */
  wrongClient: KeyPair
}

let made: TestCertificates | undefined

/** Makes the certificates once per test process. */
export function testCertificates(): TestCertificates {
  made ??= make()
  return made
}

function make(): TestCertificates {
  const dir = mkdtempSync(path.join(tmpdir(), 'bff-certs-'))
  const at = (name: string) => path.join(dir, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  try {
    const ca = (name: string, cn: string) =>
      openssl(
        'req',
        '-x509',
        ...newKey,
        '-keyout',
        at(`${name}.key`),
        '-out',
        at(`${name}.pem`),
        '-days',
        '2',
        '-subj',
        `/CN=${cn}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign'
      )
    const leaf = (name: string, cn: string, signer: string, extensions: string) => {
      openssl(
        'req',
        ...newKey,
        '-keyout',
        at(`${name}.key`),
        '-out',
        at(`${name}.csr`),
        '-subj',
        `/CN=${cn}`
      )
      writeFileSync(at(`${name}.ext`), `basicConstraints=CA:FALSE\n${extensions}\n`)
      openssl(
        'x509',
        '-req',
        '-in',
        at(`${name}.csr`),
        '-CA',
        at(`${signer}.pem`),
        '-CAkey',
        at(`${signer}.key`),
        '-CAcreateserial',
        '-out',
        at(`${name}.pem`),
        '-days',
        '2',
        '-extfile',
        at(`${name}.ext`)
      )
    }
    ca('ca', 'BFF test CA')
    ca('other-ca', 'Another CA')
    leaf(
      'server',
      'localhost',
      'ca',
      'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth'
    )
    leaf('client', 'bff-client', 'ca', 'extendedKeyUsage=clientAuth')
    leaf('wrong', 'intruder', 'other-ca', 'extendedKeyUsage=clientAuth')
    const pair = (name: string) => ({
      cert: readFileSync(at(`${name}.pem`), 'utf8'),
      key: readFileSync(at(`${name}.key`), 'utf8'),
    })
    return {
      ca: readFileSync(at('ca.pem'), 'utf8'),
      server: pair('server'),
      client: pair('client'),
      wrongClient: pair('wrong'),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
