/**
 * `tsx bench/dpop.ts`: what DPoP costs per upstream call, in process: one proof (`upstreamProof`,
 * the session's key already imported, as after its first call), and its parts, the token digest
 * and the ES256 signature; then what a login adds (a new key pair) and a cold key import. Prints
 * microseconds; no threshold, a development aid.
 */
import { dpopKey, newDpopJwk, upstreamProof } from '../src/core/oidc/dpop.ts'

const ROUNDS = 5000
const url = new URL('https://api.example.com/orders/7')
// About the size of a JWT access token.
const token = 'e'.repeat(900)

async function perCall(name: string, run: () => Promise<unknown>, rounds = ROUNDS) {
  for (let i = 0; i < Math.min(500, rounds); i++) await run()
  const started = performance.now()
  for (let i = 0; i < rounds; i++) await run()
  const us = ((performance.now() - started) / rounds) * 1000
  console.log(`${name.padEnd(34)} ${us.toFixed(1).padStart(8)} µs`)
}

const jwk = await newDpopJwk()
const key = await dpopKey(jwk)
const data = new TextEncoder().encode('header.payload-of-a-typical-dpop-proof')
await perCall('proof per upstream call', async () =>
  upstreamProof(await dpopKey(jwk), 'GET', url, token)
)
await perCall('  of which: ath (SHA-256 of token)', () =>
  crypto.subtle.digest('SHA-256', new TextEncoder().encode(token))
)
await perCall('  of which: ES256 signature', () =>
  crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.keyPair.privateKey, data)
)
await perCall('new key pair (each login)', () => newDpopJwk(), 500)
console.log(`session key as stored: ${JSON.stringify(jwk).length} bytes of JSON`)
