// The demo SPA. It never sees a token: it asks the BFF who is logged in and calls the API through
// the BFF's same-origin proxy, always with the X-CSRF header the BFF requires. No framework, no
// inline script (the page's CSP allows scripts from this origin only). bff-client.js adds the
// X-CSRF header to API calls and tells this page, in every tab at once, when the session ends.
import { createBffClient } from './bff-client.js'
import { createLivePanels } from './live.js'

const CSRF = { 'X-CSRF': '1' }
// 401s are this page's to show (a landing with "Log in again", a step-up that comes back to the
// call): the module only reports them.
const bff = createBffClient({ onUnauthenticated: 'none', onStepUp: 'none' })
// The live feed (WebSocket) and the ticker (SSE), which end with the session: live.js.
const live = createLivePanels(bff)
// What the page says when the session ends, by the reason /bff/events gives.
const ENDED = {
  logout: 'Your session has ended: it was logged out.',
  backchannel_logout: 'Your session has ended: you signed out at the identity provider.',
  admin_revoke: 'Your session has ended: an administrator ended it.',
  refresh_failed: 'Your session has ended: the identity provider no longer accepts it.',
  session_expired: 'Your session has expired.',
}
// Marks the return from a silent (prompt=none) login, so a failed one is never retried in a loop.
const SILENT_MARK = 'silent'
// Marks the return from a step-up login with the call to make again: a name from CALLS, never a
// path from the address bar, so a link cannot make this page call anything else.
const STEP_UP_MARK = 'stepup'
const CALLS = {
  hello: '/api/hello',
  echo: '/api/echo',
  admin: '/api/admin/',
  service: '/api/service/hello',
}
// What the IdP answers a silent login when it needs the user: the ordinary "not logged in yet".
const NOT_LOGGED_IN = new Set([
  'login_required',
  'consent_required',
  'interaction_required',
  'account_selection_required',
])

const $ = (id) => document.getElementById(id)
let logoutUrl = null
// The BFF's identity providers, `[{ name, label }]` in its order; a chooser when more than one.
let idps = []

async function start() {
  const params = new URLSearchParams(location.search)
  const error = params.get('error')
  const afterSilentLogin = params.has(SILENT_MARK)
  const mark = params.get(STEP_UP_MARK)
  const retry = mark !== null && Object.hasOwn(CALLS, mark) ? mark : null
  if (error || afterSilentLogin || mark !== null) {
    // Keep the address bar clean: a bookmark or reload should not replay an old login result.
    history.replaceState(null, '', location.pathname + location.hash)
  }

  const [res, known] = await Promise.all([fetch('/bff/user', { headers: CSRF }), loadIdps()])
  idps = known
  renderIdpLogins()
  if (res.ok) {
    showUser(await res.json())
    // Back from a step-up login: the call that asked for it, once more (and only once).
    if (retry) await callApi(retry, $(`call-${retry}`), { afterStepUp: true })
    return
  }
  if (res.status !== 401) return showProblem(unavailable(res.status))
  if (error && !NOT_LOGGED_IN.has(error)) {
    // Not something the BFF sends back; say so plainly rather than echo a code from the address.
    showLoggedOut('You are not logged in.')
    return showProblem('The login did not complete. Please try again.')
  }
  // Once per visit, ask the IdP without showing it: if its session still lives, the user is back
  // in after two redirects; if not, the BFF returns here with ?error=login_required, which only
  // means what the landing page says.
  if (!error && !afterSilentLogin) return silentLogin()
  showLoggedOut('You are not logged in.')
}

// Which IdPs to offer. A BFF without the list (or an odd answer) gets the one plain button,
// which logs in at its default IdP.
async function loadIdps() {
  try {
    const res = await fetch('/bff/idps', { headers: CSRF })
    const list = res.ok ? await res.json() : []
    if (!Array.isArray(list)) return []
    return list.filter((idp) => typeof idp?.name === 'string' && typeof idp?.label === 'string')
  } catch {
    return []
  }
}

function renderIdpLogins() {
  const buttons = idps.map(({ name }) => {
    const button = document.createElement('button')
    button.type = 'button'
    button.className = 'large'
    button.dataset.idp = name
    button.addEventListener('click', () => logIn(name))
    return button
  })
  $('idp-logins').replaceChildren(...buttons)
}

// `idp` names where to sign in; without it the BFF picks its default (the first).
function logIn(idp) {
  const params = new URLSearchParams(idp ? { idp } : {})
  params.set('returnTo', location.pathname)
  location.assign(`/bff/login?${params}`)
}

function silentLogin() {
  setStatus('Checking your session…')
  const returnTo = `${location.pathname}?${SILENT_MARK}=1`
  location.assign(`/bff/login?prompt=none&returnTo=${encodeURIComponent(returnTo)}`)
}

function showUser(user) {
  logoutUrl = user.logoutUrl
  // From now on the BFF tells this page (and every other tab) when the session ends.
  bff.watch()
  const name = user.claims.name ?? user.claims.email ?? user.sub
  setStatus(`Logged in as ${name}.`, 'ok')
  $('user-name').textContent = user.claims.name ?? '—'
  $('user-email').textContent = user.claims.email ?? '—'
  $('user-sub').textContent = user.sub
  $('user-idp').textContent = idpName(user.idp)
  $('user-roles').textContent = listOf(user.claims.roles)
  $('user-expires').textContent = new Date(user.expiresAt * 1000).toLocaleString([], {
    dateStyle: 'medium',
    timeStyle: 'short',
  })
  $('account-name').textContent = name
  $('avatar').textContent = initial(name)
  show('dashboard')
  live.start()
}

// "Corp (corp)": the label the login button showed, and the name the BFF answers.
function idpName(name) {
  if (typeof name !== 'string') return '—'
  const label = idps.find((idp) => idp.name === name)?.label
  return label && label !== name ? `${label} (${name})` : name
}

function listOf(value) {
  const values = Array.isArray(value) ? value : value === undefined ? [] : [value]
  return values.length ? values.map(String).join(', ') : '—'
}

function showLoggedOut(message, loginLabel = 'Log in') {
  logoutUrl = null
  setStatus(message)
  const choose = idps.length > 1
  $('login').textContent = loginLabel
  $('login').hidden = choose
  $('idp-logins').hidden = !choose
  for (const button of $('idp-logins').children) {
    const { label } = idps.find((idp) => idp.name === button.dataset.idp)
    button.textContent = `${loginLabel} with ${label}`
  }
  show('landing')
}

// A real failure: the landing stays usable, with a readable reason above it.
function showProblem(message) {
  $('problem').textContent = message
  $('problem').hidden = false
  if ($('landing').hidden && $('dashboard').hidden) {
    setStatus('The session could not be checked.', 'error')
    show('landing')
  }
}

function unavailable(status) {
  if (status === 503 || status === 504) {
    return 'The sign-in service is not reachable right now. Please try again in a moment.'
  }
  return `Something went wrong while checking your session (the server answered ${status}).`
}

function setStatus(message, tone = '') {
  $('status').textContent = message
  $('status').dataset.tone = tone
}

function show(view) {
  const signedIn = view === 'dashboard'
  $('landing').hidden = signedIn
  $('features').hidden = signedIn
  $('dashboard').hidden = !signedIn
  $('account').hidden = !signedIn
}

async function callApi(name, button, { afterStepUp = false } = {}) {
  const path = CALLS[name]
  button.disabled = true
  try {
    const res = await bff.fetch(path)
    const body = await res.json().catch(() => null)
    showApiResult(path, res.status, body)
    if (res.status === 401 && body?.error === 'step_up_required') {
      // Fresh from a step-up that did not satisfy the API: say so rather than go round again.
      if (afterStepUp) return showProblem('The API still asks for a stronger login.')
      return stepUp(name, body.loginUrl)
    }
    if (res.status === 401) {
      const reason = body?.error === 'session_expired' ? 'expired' : 'ended'
      showLoggedOut(`Your session has ${reason}. Log in again to continue.`, 'Log in again')
    }
  } catch (err) {
    showApiResult(path, 'failed', { error: err.message })
  } finally {
    button.disabled = false
  }
}

// The API wants a stronger or more recent login (the demo's admin area: a second factor): through
// the BFF's login address it names, and back to this page, which then makes the call again.
function stepUp(name, loginUrl) {
  const url = new URL(loginUrl, location.origin)
  if (url.origin !== location.origin || url.pathname !== '/bff/login') {
    return showProblem('The API asked for a login this page does not know how to start.')
  }
  url.searchParams.set('returnTo', `${location.pathname}?${STEP_UP_MARK}=${name}`)
  setStatus('The API asks for a stronger sign-in: on to the sign-in page…')
  location.assign(url.pathname + url.search)
}

function showApiResult(path, status, body) {
  $('api').hidden = false
  $('api-request').textContent = `GET ${path}`
  $('api-status').textContent = String(status)
  $('api-status').classList.toggle('error', status !== 200)
  $('output').textContent = body === null ? '(no JSON body)' : JSON.stringify(body, null, 2)
}

function initial(name) {
  return (String(name).match(/\p{L}|\p{N}/u)?.[0] ?? '?').toUpperCase()
}

$('login').addEventListener('click', () => logIn())
for (const name of Object.keys(CALLS)) {
  $(`call-${name}`).addEventListener('click', (e) => callApi(name, e.currentTarget))
}
$('logout').addEventListener('click', () => {
  // A plain navigation: the BFF ends the session, then sends the browser to the IdP to end its own.
  // The other tabs are told at once, and again by the BFF's event stream.
  if (logoutUrl) bff.logout(logoutUrl)
})
bff.addEventListener('session_ended', (event) => {
  if ($('dashboard').hidden) return
  const said = ENDED[event.detail.reason] ?? 'Your session has ended.'
  showLoggedOut(`${said} Log in again to continue.`, 'Log in again')
})
bff.addEventListener('session_expiring', (event) => {
  const at = new Date(event.detail.expiresAt * 1000).toLocaleTimeString([], { timeStyle: 'short' })
  setStatus(`Your session ends at ${at}: log in again then to go on.`, 'warn')
})

start().catch((err) => showProblem(`Could not reach the server: ${err.message}`))
