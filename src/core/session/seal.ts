import { sealData, unsealData } from 'iron-session'

/**
 * Encrypts and authenticates small JSON values for cookies (iron: AES-256-CBC + HMAC-SHA256).
 * With several secrets the first seals and all unseal, so a secret can be rotated without
 * logging anybody out.
 */
export interface Sealer {
  seal(data: object, ttlSeconds: number): Promise<string>
  /** The data, or null when the seal is malformed, forged, expired or from an unknown secret. */
  unseal<T>(sealed: string): Promise<T | null>
  /** True when `sealed` was made with an older secret and should be sealed again with the first. */
  isStale(sealed: string): Promise<boolean>
}

export function createSealer(secrets: readonly string[]): Sealer {
  if (secrets.length === 0) throw new Error('"secrets" must hold at least one secret')
  // iron tags each seal with a password id. Ids derived from the secret itself (not its position)
  // keep old cookies readable when an operator puts a new secret in front of the list.
  const passwords = passwordMap(secrets)
  return {
    async seal(data, ttlSeconds) {
      const { current } = await passwords
      // Our own expiry next to iron's: iron accepts seals for 60 s past theirs (clock skew allowance).
      const exp = Math.floor(Date.now() / 1000) + ttlSeconds
      return sealData({ v: data, exp }, { password: current, ttl: ttlSeconds })
    },
    async unseal<T>(sealed: string) {
      const { all } = await passwords
      try {
        // ttl 0: the seal's own expiry was set when sealing; iron checks it either way.
        const data = await unsealData<{ v?: T; exp?: number }>(sealed, { password: all, ttl: 0 })
        if (!data?.v || typeof data.exp !== 'number' || data.exp <= Date.now() / 1000) return null
        return data.v
      } catch {
        return null
      }
    },
    async isStale(sealed) {
      const { currentId } = await passwords
      // iron's format: Fe26.2*<password id>*…
      return sealed.split('*')[1] !== currentId
    },
  }
}

async function passwordMap(secrets: readonly string[]) {
  const all: Record<string, string> = {}
  for (const secret of secrets) all[await passwordId(secret)] = secret
  const currentId = await passwordId(secrets[0]!)
  return { current: { [currentId]: secrets[0]! }, currentId, all }
}

/** A short numeric id from the secret's SHA-256, so seals name their key without revealing it. */
async function passwordId(secret: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest('SHA-256', new TextEncoder().encode(secret))
  )
  return String(((digest[0]! << 16) | (digest[1]! << 8) | digest[2]!) + 1)
}
