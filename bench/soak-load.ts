/**
 * The soak's load (bench/soak.ts): a population of live sessions, each held as the Cookie header a
 * browser would send (Set-Cookie kept, cookies.ts), called at a steady rate, some logged out and
 * replaced all the while, every answer checked.
 *
 * - Calls go round robin over the population at `rate` per second (undici, one pool of
 *   keep-alive connections), `realShare` of them to the sessions of real logins (whose access
 *   tokens expire, so they refresh through the IdP), the rest to minted ones (clone.ts, access
 *   tokens that outlast the soak: their random refresh tokens mean nothing to the IdP). A session
 *   has at most one call in flight, as one browser tab would; a call that finds its session busy
 *   moves on to the next.
 * - A live session must answer 200: a 401 is a lost session. Each second `logoutsPerSecond`
 *   random sessions log out (`POST /bff/logout`, one in ten a real login); the logout must answer
 *   302 and the old cookie 401 right after. Old cookies are called again now and then
 *   (`loggedOutShare` of the calls): still 401, or they count as revived. Each logged-out session
 *   is replaced (minted ones in a batch per second, real ones by a new login), so the population
 *   stays the same size.
 */
import { Pool } from 'undici'
import { applySetCookie } from './cookies.ts'

export interface SoakLoadOptions {
  url: string
  rate: number
  realShare: number
  logoutsPerSecond: number
  loggedOutShare: number
  /** The population: cookies of real logins first, then minted ones. */
  real: string[]
  minted: string[]
  /** New minted sessions' cookies, `count` of them. */
  mint(count: number): Promise<string[]>
  /** A new real login's cookie. */
  login(): Promise<string>
}

export interface SoakCounts {
  calls: number
  /** Answers by status (`network`: none), over every kind of call. */
  statuses: Record<string, number>
  /** Distinct live sessions that answered 401 at least once. */
  lostSessions: number
  /** Of those, sessions of real logins. */
  lostReal: number
  lostCalls: number
  /** Calls of logged-out sessions that did not answer 401. */
  revived: number
  loggedOutCalls: number
  logouts: number
  /** Logouts that did not answer 302 or whose cookie still worked right after. */
  failedLogouts: number
  realLogins: number
  failedLogins: number
  minted: number
  /** Calls not sent because every session was busy or too many were in flight. */
  skipped: number
}

const CSRF = { 'x-csrf': '1' }
const MAX_IN_FLIGHT = 512
const LOGGED_OUT_KEPT = 1000
const TICK_MS = 10

interface Slot {
  cookie: string
  real: boolean
  busy: boolean
  /** Its replacement login failed: out of the population. */
  retired?: boolean
}

export function soakLoad(options: SoakLoadOptions) {
  const { url, rate } = options
  const pool = new Pool(url, { connections: 64, pipelining: 1 })
  const slots: Slot[] = [
    ...options.real.map((cookie) => ({ cookie, real: true, busy: false })),
    ...options.minted.map((cookie) => ({ cookie, real: false, busy: false })),
  ]
  const realCount = options.real.length
  const counts: SoakCounts = {
    calls: 0,
    statuses: {},
    lostSessions: 0,
    lostReal: 0,
    lostCalls: 0,
    revived: 0,
    loggedOutCalls: 0,
    logouts: 0,
    failedLogouts: 0,
    realLogins: 0,
    failedLogins: 0,
    minted: 0,
    skipped: 0,
  }
  const lost = new Set<Slot>()
  const loggedOut: string[] = []
  let inFlight = 0
  let realTurn = 0
  let mintedTurn = realCount

  const count = (status: number | 'network') => {
    counts.statuses[status] = (counts.statuses[status] ?? 0) + 1
  }

  async function send(method: 'GET' | 'POST', path: string, cookie: string) {
    inFlight++
    counts.calls++
    try {
      const { statusCode, headers, body } = await pool.request({
        method,
        path,
        headers: { ...CSRF, cookie },
      })
      await body.dump()
      count(statusCode)
      return { status: statusCode, setCookie: headers['set-cookie'] }
    } catch {
      count('network')
      return { status: 0, setCookie: undefined }
    } finally {
      inFlight--
    }
  }

  /** The next idle session in its turn (real or minted), or undefined when all are busy. */
  function next(real: boolean): Slot | undefined {
    const [from, size] = real ? [0, realCount] : [realCount, slots.length - realCount]
    for (let tries = 0; tries < Math.min(size, 64); tries++) {
      const i = real ? from + (realTurn++ % size) : from + ((mintedTurn++ - from) % size)
      const slot = slots[i]!
      if (!slot.busy && !slot.retired) return slot
    }
    return undefined
  }

  async function call(slot: Slot) {
    slot.busy = true
    // Mostly API calls through the proxy, one in ten the SPA asking who is logged in.
    const path = Math.random() < 0.9 ? '/api/items' : '/bff/user'
    const { status, setCookie } = await send('GET', path, slot.cookie)
    if (status === 401) {
      counts.lostCalls++
      if (!lost.has(slot)) {
        counts.lostSessions++
        if (slot.real) counts.lostReal++
      }
      lost.add(slot)
    }
    slot.cookie = applySetCookie(slot.cookie, setCookie)
    slot.busy = false
  }

  async function callLoggedOut() {
    const cookie = loggedOut[Math.floor(Math.random() * loggedOut.length)]!
    counts.loggedOutCalls++
    if ((await send('GET', '/api/items', cookie)).status !== 401) counts.revived++
  }

  const toMint: Slot[] = []
  async function logout(slot: Slot) {
    slot.busy = true
    const old = slot.cookie
    const out = await send('POST', '/bff/logout', old)
    const after = await send('GET', '/api/items', old)
    counts.logouts++
    if (out.status !== 302 || after.status !== 401) counts.failedLogouts++
    loggedOut.push(old)
    if (loggedOut.length > LOGGED_OUT_KEPT) loggedOut.shift()
    // Busy until replaced: the slot holds no live session meanwhile.
    if (!slot.real) return void toMint.push(slot)
    try {
      slot.cookie = await options.login()
      counts.realLogins++
      slot.busy = false
    } catch {
      counts.failedLogins++
      slot.retired = true
    }
  }

  let logoutsDone = 0
  async function logoutSome(due: number) {
    while (logoutsDone < due) {
      // One in ten a real login's session, the rest minted ones.
      const real = logoutsDone++ % 10 === 0
      const size = real ? realCount : slots.length - realCount
      const slot = slots[(real ? 0 : realCount) + Math.floor(Math.random() * size)]!
      if (!slot.busy && !slot.retired) void logout(slot)
    }
    if (!toMint.length) return
    const batch = toMint.splice(0)
    const cookies = await options.mint(batch.length)
    counts.minted += cookies.length
    batch.forEach((slot, i) => {
      slot.cookie = cookies[i]!
      slot.busy = false
    })
  }

  let timer: NodeJS.Timeout | undefined
  let minting: Promise<void> = Promise.resolve()
  return {
    counts,
    /** Live sessions (not being replaced). */
    live: () => slots.filter((s) => !s.busy && !s.retired).length,
    start() {
      const started = performance.now()
      let sent = 0
      let lastLogoutSecond = 0
      timer = setInterval(() => {
        const elapsed = (performance.now() - started) / 1000
        const due = Math.floor(elapsed * rate) - sent
        for (let i = 0; i < due; i++) {
          sent++
          if (inFlight >= MAX_IN_FLIGHT) {
            counts.skipped++
            continue
          }
          if (loggedOut.length && Math.random() < options.loggedOutShare) {
            void callLoggedOut()
            continue
          }
          const slot = next(Math.random() < options.realShare)
          if (slot) void call(slot)
          else counts.skipped++
        }
        const second = Math.floor(elapsed)
        if (second > lastLogoutSecond) {
          lastLogoutSecond = second
          minting = minting.then(() => logoutSome(second * options.logoutsPerSecond))
        }
      }, TICK_MS)
    },
    /** Stops the load and waits for every call, logout and replacement in flight. */
    async stop() {
      clearInterval(timer)
      await minting
      const pending = () => slots.some((s) => s.busy && !s.retired && !toMint.includes(s))
      while (inFlight > 0 || pending()) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      await logoutSome(logoutsDone)
    },
    /** Every live session called once more, `concurrency` at a time: each must answer 200. */
    async sweep(concurrency = 32): Promise<{ checked: number; notOk: Record<string, number> }> {
      const notOk: Record<string, number> = {}
      let i = 0
      let checked = 0
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (i < slots.length) {
            const slot = slots[i++]!
            if (slot.retired) continue
            checked++
            const { status, setCookie } = await send('GET', '/bff/user', slot.cookie)
            if (status !== 200) notOk[status] = (notOk[status] ?? 0) + 1
            slot.cookie = applySetCookie(slot.cookie, setCookie)
          }
        })
      )
      return { checked, notOk }
    },
    close: () => pool.close(),
  }
}
