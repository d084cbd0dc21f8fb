// The demo SPA's live connections, two panels: the demo API's WebSocket feed through the BFF's
// `/live/` route, and its Server-Sent Events ticker through `/api/ticker`. Both end with the
// session, and the BFF ends them: it closes the socket with 1008 and `session_ended:<reason>`, and
// ends the stream. The panels then stay on the page, logged out, saying how each one ended.

// Lines each panel's log keeps.
const KEEP = 6
// How long after the page heard that the session ended it leaves the BFF to close the socket and
// end the stream before it does so itself (the BFF takes under a second).
const GRACE_MS = 3000
// A socket the BFF closed because its access token expired (the `cookie` store) is opened again at
// once, which refreshes the session; not more often than this, so a failing refresh cannot loop.
const REOPEN_MS = 5000

/**
 * @param {ReturnType<import('./bff-client.js').createBffClient>} bff
 */
export function createLivePanels(bff) {
  const $ = (id) => document.getElementById(id)
  let loggedIn = false
  /** The feed: its socket and what became of it. */
  const feed = { socket: null, phase: 'idle', code: 0, reason: '', byPage: false, reopenedAt: 0 }
  /** The ticker: how its stream runs, and how many events it brought. */
  const ticker = { controller: null, phase: 'stopped', count: 0, why: '', byPage: false }

  function openFeed() {
    if (feed.socket) return
    const url = new URL('/live/feed', location.href)
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:'
    const ws = new WebSocket(url)
    feed.socket = ws
    let opened = false
    Object.assign(feed, { phase: 'connecting', byPage: false })
    renderFeed()
    ws.addEventListener('open', () => {
      opened = true
      feed.phase = 'open'
      renderFeed()
    })
    ws.addEventListener('message', (event) => log('feed-log', feedLine(event.data)))
    ws.addEventListener('close', (event) => {
      if (feed.socket === ws) feed.socket = null
      // A browser says nothing of a refused upgrade (no status, code 1006): not there, or refused.
      if (!opened) feed.phase = 'unavailable'
      else Object.assign(feed, { phase: 'closed', code: event.code, reason: event.reason })
      const expired = opened && event.code === 1008 && event.reason === 'token_expired'
      if (expired && loggedIn && Date.now() - feed.reopenedAt > REOPEN_MS) {
        feed.reopenedAt = Date.now()
        return openFeed()
      }
      renderFeed()
    })
  }

  function renderFeed() {
    const { phase, code, reason, byPage } = feed
    let text = {
      idle: 'Not connected.',
      connecting: 'Connecting…',
      open: loggedIn
        ? 'Open: a message a second from the demo API.'
        : 'Waiting for the BFF to close the feed…',
      closed: `closed: ${reason || 'no reason given'} (${code})${byPage ? ', by this page: the BFF had not closed it' : ''}`,
      unavailable: 'Not available: the BFF refused the upgrade, or has no /live/ route.',
    }[phase]
    if (!loggedIn) text = `Logged out. ${text}`
    const endedBySession = phase === 'closed' && reason.startsWith('session_ended')
    state('feed-state', text, phase === 'open' && loggedIn ? 'ok' : code === 1008 ? 'error' : '')
    $('feed-send').disabled = !(loggedIn && phase === 'open')
    $('feed-form').hidden = !loggedIn
    $('feed-reconnect').hidden =
      !loggedIn || !['closed', 'unavailable'].includes(phase) || endedBySession
  }

  async function runTicker() {
    const controller = new AbortController()
    Object.assign(ticker, { controller, phase: 'connecting', count: 0, byPage: false })
    renderTicker()
    try {
      // bffFetch: X-CSRF, and a 401 tells every tab the session ended.
      const response = await bff.fetch('/api/ticker', {
        headers: { Accept: 'text/event-stream' },
        cache: 'no-store',
        signal: controller.signal,
      })
      if (!response.ok || !response.body) {
        await response.body?.cancel().catch(() => {})
        Object.assign(ticker, { phase: 'unavailable', why: `the BFF answered ${response.status}` })
      } else {
        ticker.phase = 'running'
        renderTicker()
        await readEvents(response.body, controller.signal, (name, data) => {
          if (name !== 'tick') return
          ticker.count++
          log('ticker-log', `#${data.n} tick for ${data.sub} · ${clock(data.time)}`)
          renderTicker()
        })
        // Cancelled by the Stop button (or by this page after a session end), or ended.
        if (controller.signal.aborted) ticker.phase = 'stopped'
        else Object.assign(ticker, { phase: 'ended', why: 'the stream ended' })
      }
    } catch {
      if (!controller.signal.aborted) Object.assign(ticker, { phase: 'ended', why: 'it broke off' })
      else ticker.phase = 'stopped'
    }
    if (ticker.controller === controller) ticker.controller = null
    renderTicker()
  }

  function renderTicker() {
    const { phase, count, why, byPage } = ticker
    const events = `${count} event${count === 1 ? '' : 's'}`
    let text = {
      stopped: byPage
        ? `Stopped by this page after ${events}: the BFF had not ended the stream.`
        : count
          ? `Stopped after ${events}.`
          : 'Stopped.',
      connecting: 'Connecting…',
      running: loggedIn ? `Running: ${events} so far.` : 'Waiting for the BFF to end the stream…',
      ended: `Ended after ${events}: ${why}.`,
      unavailable: `Not available: ${why}.`,
    }[phase]
    if (!loggedIn) text = `Logged out. ${text}`
    state('ticker-state', text, phase === 'running' && loggedIn ? 'ok' : '')
    const running = phase === 'connecting' || phase === 'running'
    $('ticker-toggle').textContent = running ? 'Stop the ticker' : 'Start the ticker'
    $('ticker-toggle').hidden = !loggedIn
  }

  function state(id, text, tone) {
    $(id).textContent = text
    $(id).dataset.tone = tone
  }

  function log(id, line) {
    const item = document.createElement('li')
    item.textContent = line
    $(id).prepend(item)
    while ($(id).children.length > KEEP) $(id).lastElementChild.remove()
  }

  /** The session ended (any tab, or the BFF's events): the BFF closes both; the page waits. */
  function sessionEnded() {
    if (!loggedIn) return
    loggedIn = false
    const { socket } = feed
    const { controller } = ticker
    renderFeed()
    renderTicker()
    setTimeout(() => {
      if (socket && feed.socket === socket) {
        feed.byPage = true
        socket.close(1000, 'logged out')
      }
      if (controller && ticker.controller === controller) {
        ticker.byPage = true
        controller.abort()
      }
    }, GRACE_MS)
  }

  $('feed-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const text = $('feed-text').value.trim()
    if (!text || feed.socket?.readyState !== WebSocket.OPEN) return
    feed.socket.send(text)
    $('feed-text').value = ''
  })
  $('feed-reconnect').addEventListener('click', () => openFeed())
  $('ticker-toggle').addEventListener('click', () => {
    if (ticker.controller) ticker.controller.abort()
    else runTicker()
  })
  bff.addEventListener('session_ended', sessionEnded)

  return {
    /** Logged in: shows the panels and opens the feed (the ticker waits for its button). */
    start() {
      loggedIn = true
      $('live').hidden = false
      openFeed()
      renderTicker()
    },
  }
}

/** One message of the feed as a log line: a tick, an echo, or whatever else came. */
function feedLine(data) {
  let message
  try {
    message = JSON.parse(data)
  } catch {
    return String(data).slice(0, 200)
  }
  if (message?.type === 'tick')
    return `#${message.n} tick for ${message.sub} · ${clock(message.time)}`
  if (message?.type === 'echo') return `echo for ${message.sub}: ${message.text}`
  return String(data).slice(0, 200)
}

function clock(time) {
  const date = new Date(time)
  return Number.isNaN(date.getTime()) ? '' : date.toLocaleTimeString([], { timeStyle: 'medium' })
}

/** Reads Server-Sent Events from `body` until it ends: `onEvent(name, data)` with data parsed. */
async function readEvents(body, signal, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true })
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += value.replace(/\r\n?/g, '\n')
    let cut
    while ((cut = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, cut)
      buffer = buffer.slice(cut + 2)
      let name = 'message'
      let data = ''
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim()
        else if (line.startsWith('data:')) data += line.slice(5).trim()
      }
      try {
        onEvent(name, JSON.parse(data))
      } catch {
        // Not JSON (a comment, a heartbeat): nothing to show.
      }
    }
  }
}
