// The BFF's browser module: a plain ES module, no build step, no dependency. Copy it next to your
// SPA's files or serve it from the BFF (the demo does), then:
//
//   import { createBffClient } from '/bff-client.js'
//   const bff = createBffClient()
//   bff.addEventListener('session_ended', (e) => showLoggedOut(e.detail.reason))
//   bff.watch()                              // once logged in: listen to /bff/events
//   const res = await bff.fetch('/api/orders') // X-CSRF added; a 401 sends the browser to log in
//
// What it does:
// - `fetch` adds `X-CSRF: 1`. A 401 `unauthenticated` or `session_expired` tells every tab the
//   session ended and (by default) goes to `/bff/login?returnTo=<this page>`; a 401
//   `step_up_required` goes to the BFF's `loginUrl` for it, back to this page.
// - `watch` reads `GET /bff/events` with fetch (EventSource cannot send `X-CSRF`), reconnecting
//   with backoff, and dispatches `session_ended` ({ reason }) and `session_expiring`
//   ({ expiresAt }, epoch seconds). One tab of the browser holds the stream (a Web Lock): browsers
//   allow 6 connections per origin over HTTP/1.1, and one open stream per tab would use them up.
// - Every tab hears every event at once through `BroadcastChannel('bff')`.
// - Silent login (`prompt=none`) before the interactive one is an option, off by default: some IdPs
//   answer it with an error page or their login page instead of `login_required`.
// It keeps nothing in localStorage, sessionStorage or cookies.

const CHANNEL = 'bff'
const LOCK = 'bff-events'
// Marks a return from a silent login in the URL, so a failed one is never tried again in a loop.
const SILENT_MARK = 'bff-silent'
const ENDED_ERRORS = new Set(['unauthenticated', 'session_expired'])
const REASON = /^[a-z_]{1,40}$/

/**
 * @typedef {object} BffClientOptions
 * @property {string} [base] Where the BFF is, for a SPA served elsewhere on the same site. Default: this origin.
 * @property {'login' | 'none' | ((reason: string) => void)} [onUnauthenticated]
 *   What a 401 `unauthenticated` or `session_expired` from `fetch` does: `login` (default) goes to
 *   the BFF's login and back to this page; `none` leaves it to the `session_ended` listeners; a
 *   function is called with the error code.
 * @property {'login' | 'none'} [onStepUp] What a 401 `step_up_required` does: `login` (default)
 *   goes to the BFF's `loginUrl` for it and back; `none` leaves it to the caller.
 * @property {boolean} [silentLogin] Try `prompt=none` before the interactive login. Default false.
 * @property {number} [maxBackoffMs] Longest wait between reconnections. Default 30000.
 */

/**
 * @param {BffClientOptions} [options]
 */
export function createBffClient(options = {}) {
  const base = options.base ?? ''
  const maxBackoffMs = options.maxBackoffMs ?? 30_000
  const target = new EventTarget()
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null
  /** The reason the session ended, once it did: every later word of it is the same news. */
  let ended = null
  /** Stops the watching this tab does (holding or waiting for the stream). */
  let watching = null

  function emit(type, detail, fromOtherTab = false) {
    if (type === 'session_ended') {
      if (ended !== null) return
      ended = detail.reason
      watching?.abort()
      watching = null
    }
    target.dispatchEvent(new CustomEvent(type, { detail }))
    if (!fromOtherTab) channel?.postMessage({ type, detail })
  }

  if (channel) {
    channel.onmessage = (message) => {
      const { type, detail } = message.data ?? {}
      if (type === 'session_ended' && REASON.test(detail?.reason ?? '')) {
        emit(type, { reason: detail.reason }, true)
      } else if (type === 'session_expiring' && Number.isFinite(detail?.expiresAt)) {
        emit(type, { expiresAt: detail.expiresAt }, true)
      }
    }
  }

  /** This page, as the BFF takes a `returnTo`: a path on this origin with its query. */
  function here(extra) {
    const url = new URL(location.href)
    if (extra) url.searchParams.set(extra, '1')
    else url.searchParams.delete(SILENT_MARK)
    return url.pathname + url.search
  }

  /** Goes to the BFF's login, back to this page: silently first when asked for, once. */
  function login() {
    const params = new URLSearchParams()
    const triedSilently = new URLSearchParams(location.search).has(SILENT_MARK)
    if (options.silentLogin && !triedSilently) {
      params.set('prompt', 'none')
      params.set('returnTo', here(SILENT_MARK))
    } else {
      params.set('returnTo', here())
    }
    location.assign(`${base}/bff/login?${params}`)
  }

  /** `fetch` with `X-CSRF: 1`, and the BFF's 401s acted on. Answers the response as it came. */
  async function bffFetch(input, init = {}) {
    const headers = new Headers(init.headers)
    headers.set('X-CSRF', '1')
    const response = await fetch(input, { credentials: 'same-origin', ...init, headers })
    if (response.status !== 401) return response
    const body = await response
      .clone()
      .json()
      .catch(() => null)
    const error = typeof body?.error === 'string' ? body.error : ''
    if (error === 'step_up_required' && (options.onStepUp ?? 'login') === 'login') {
      stepUp(body.loginUrl)
    } else if (ENDED_ERRORS.has(error)) {
      emit('session_ended', { reason: error })
      const act = options.onUnauthenticated ?? 'login'
      if (act === 'login') login()
      else if (typeof act === 'function') act(error)
    }
    return response
  }

  /** To the BFF's step-up login, only ever on this origin's `/bff/login`, and back here. */
  function stepUp(loginUrl) {
    if (typeof loginUrl !== 'string') return
    const url = new URL(loginUrl, location.origin + base)
    if (url.origin !== location.origin || !url.pathname.endsWith('/bff/login')) return
    url.searchParams.set('returnTo', here())
    location.assign(url.pathname + url.search)
  }

  /** Listens to /bff/events while the session lives; one tab of the browser at a time. */
  function watch() {
    if (watching) return
    ended = null
    const controller = new AbortController()
    watching = controller
    const run = () => stream(controller.signal)
    if (navigator.locks?.request) {
      navigator.locks.request(LOCK, { signal: controller.signal }, run).catch(() => {})
    } else {
      run()
    }
  }

  function stop() {
    watching?.abort()
    watching = null
  }

  async function stream(signal) {
    let delay = 1000
    while (!signal.aborted && ended === null) {
      const openedAt = Date.now()
      let response
      try {
        response = await fetch(`${base}/bff/events`, {
          headers: { 'X-CSRF': '1', Accept: 'text/event-stream' },
          credentials: 'same-origin',
          cache: 'no-store',
          signal,
        })
      } catch {
        response = null // offline, or the server going away: try again
      }
      if (signal.aborted) return
      if (response?.status === 401) {
        const body = await response.json().catch(() => null)
        const reason = body?.error === 'session_expired' ? 'session_expired' : 'unauthenticated'
        return emit('session_ended', { reason })
      }
      if (response?.status === 403) {
        console.warn('bff-client: /bff/events refused the request (403): not watching')
        return
      }
      if (response?.ok && response.body) await read(response.body, signal)
      if (signal.aborted || ended !== null) return
      // A stream that lived a while ended normally (a server going down, a deadline only the
      // cookie can settle): come back soon. Failures back off, with jitter, up to the limit.
      if (Date.now() - openedAt > 30_000) delay = 1000
      await sleep(delay / 2 + Math.random() * (delay / 2), signal)
      delay = Math.min(delay * 2, maxBackoffMs)
    }
  }

  /** Reads one stream's events until it ends. */
  async function read(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader()
    signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true })
    let buffer = ''
    try {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        buffer += value.replace(/\r\n?/g, '\n')
        let cut
        while ((cut = buffer.indexOf('\n\n')) !== -1) {
          dispatch(buffer.slice(0, cut))
          buffer = buffer.slice(cut + 2)
          if (ended !== null) return
        }
      }
    } catch {
      // Cut off: the loop reconnects.
    }
  }

  /** One SSE block: `event:` and `data:` lines; comments (heartbeats) are skipped. */
  function dispatch(block) {
    let name = 'message'
    let data = ''
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim()
      else if (line.startsWith('data:')) data += line.slice(5).trim()
    }
    let detail
    try {
      detail = JSON.parse(data)
    } catch {
      return
    }
    if (name === 'session_ended' && REASON.test(detail?.reason ?? '')) {
      emit('session_ended', { reason: detail.reason })
    } else if (name === 'session_expiring' && Number.isFinite(detail?.expiresAt)) {
      emit('session_expiring', { expiresAt: detail.expiresAt })
    }
  }

  /** Ends the session: tells every tab first, then goes to the BFF's logout URL. */
  function logout(logoutUrl) {
    emit('session_ended', { reason: 'logout' })
    location.assign(logoutUrl)
  }

  return {
    fetch: bffFetch,
    login,
    logout,
    watch,
    stop,
    addEventListener: target.addEventListener.bind(target),
    removeEventListener: target.removeEventListener.bind(target),
    /** The reason the session ended, or null while it lives (or was never seen). */
    get ended() {
      return ended
    },
  }
}

/** A client with the defaults, for pages that need only `bffFetch`. */
let shared
export function bffFetch(input, init) {
  shared ??= createBffClient()
  return shared.fetch(input, init)
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(timer)
        resolve()
      },
      { once: true }
    )
  })
}
