/** The session's DPoP key and the upstream proofs made with it (RFC 9449 4.2). */
import { createHash } from 'node:crypto'
import * as jose from 'jose'
import { describe, expect, it } from 'vitest'
import { dpopKey, dpopThumbprint, newDpopJwk, upstreamProof } from '../../../src/core/oidc/dpop.ts'

describe('upstreamProof', () => {
  it('signs htm, htu without query or fragment, ath, jti and iat with the public key only', async () => {
    const jwk = await newDpopJwk()
    const key = await dpopKey(jwk)
    const url = new URL('https://api.example.com/orders/7?page=2#top')
    const proof = await upstreamProof(key, 'PATCH', url, 'the-token', 'n-1')
    const { payload, protectedHeader } = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: ['ES256'],
    })
    expect(protectedHeader.jwk).toEqual({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y })
    expect(JSON.stringify(protectedHeader)).not.toContain(jwk.d)
    expect(await jose.calculateJwkThumbprint(protectedHeader.jwk!)).toBe(await dpopThumbprint(jwk))
    expect(payload).toMatchObject({
      htm: 'PATCH',
      htu: 'https://api.example.com/orders/7',
      ath: createHash('sha256').update('the-token').digest('base64url'),
      nonce: 'n-1',
    })
    expect(Math.abs((payload.iat as number) - Date.now() / 1000)).toBeLessThan(5)
    const again = jose.decodeJwt(await upstreamProof(key, 'PATCH', url, 'the-token'))
    expect(again.jti).not.toBe(payload.jti)
    expect(again.nonce).toBeUndefined()
  })

  it('keeps the private key non-extractable once imported', async () => {
    const key = await dpopKey(await newDpopJwk())
    expect(key.keyPair.privateKey.extractable).toBe(false)
    await expect(crypto.subtle.exportKey('jwk', key.keyPair.privateKey)).rejects.toThrow()
  })
})
