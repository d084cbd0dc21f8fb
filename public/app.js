// The demo SPA. It never sees a token: it asks the BFF who is logged in and calls the API through
// the BFF's same-origin proxy, always with the X-CSRF header the BFF requires. No framework, no
// inline script (the page's CSP allows scripts from this origin only).
const CSRF = { 'X-CSRF': '1' }
// Marks the return from a silent (prompt=none) login, so a failed one is never retried in a loop.
const SILENT_MARK = 'silent'
const LOGIN_ERRORS = {
  login_required: 'the identity provider has no session for you',
  consent_required: 'the identity provider needs you to confirm access',
  interaction_required: 'the identity provider needs you to sign in',
  account_selection_required: 'the identity provider needs you to pick an account',
}

const $ = (id) => document.getElementById(id)
let logoutUrl = null

async function start() {
  const params = new URLSearchParams(location.search)
  const error = params.get('error')
  const afterSilentLogin = params.has(SILENT_MARK)
  if (error || afterSilentLogin) {
    // Keep the address bar clean: a bookmark or reload should not replay an old login result.
    history.replaceState(null, '', location.pathname + location.hash)
  }

  const res = await fetch('/bff/user', { headers: CSRF })
  if (res.ok) return showUser(await res.json())
  if (res.status !== 401) return showProblem(`The BFF answered ${res.status}.`)
  if (error) {
    return showLoggedOut(
      `You are not logged in: ${LOGIN_ERRORS[error] ?? 'the login did not complete'} (${error}).`
    )
  }
  // Once per visit, ask the IdP without showing it: if its session still lives, the user is back
  // in after two redirects; if not, the BFF returns here with ?error=login_required.
  if (!afterSilentLogin) return silentLogin()
  showLoggedOut('You are not logged in.')
}

function silentLogin() {
  $('status').textContent = 'Looking for a session at the identity provider…'
  const returnTo = `${location.pathname}?${SILENT_MARK}=1`
  location.assign(`/bff/login?prompt=none&returnTo=${encodeURIComponent(returnTo)}`)
}

function showUser(user) {
  logoutUrl = user.logoutUrl
  const name = user.claims.name ?? user.claims.email ?? user.sub
  setStatus(`Logged in as ${name}.`)
  $('user-name').textContent = user.claims.name ?? '—'
  $('user-email').textContent = user.claims.email ?? '—'
  $('user-sub').textContent = user.sub
  $('user-expires').textContent = new Date(user.expiresAt * 1000).toLocaleString([], {
    dateStyle: 'medium',
    timeStyle: 'short',
  })
  $('user').hidden = false
  show({ api: true, logout: true })
}

function showLoggedOut(message, loginLabel = 'Log in') {
  logoutUrl = null
  setStatus(message)
  $('user').hidden = true
  $('login').textContent = loginLabel
  show({ login: true })
}

function showProblem(message) {
  setStatus(message, true)
}

function setStatus(message, isError = false) {
  $('status').textContent = message
  $('status').classList.toggle('error', isError)
}

function show({ login = false, api = false, logout = false }) {
  $('login').hidden = !login
  $('call-api').hidden = !api
  $('logout').hidden = !logout
}

async function callApi() {
  const button = $('call-api')
  button.disabled = true
  try {
    const res = await fetch('/api/hello', { headers: CSRF })
    const body = await res.json().catch(() => null)
    showApiResult(res.status, body)
    if (res.status === 401) {
      const reason = body?.error === 'session_expired' ? 'expired' : 'ended'
      showLoggedOut(`Your session has ${reason}. Log in again to continue.`, 'Log in again')
    }
  } catch (err) {
    showApiResult('failed', { error: err.message })
  } finally {
    button.disabled = false
  }
}

function showApiResult(status, body) {
  $('api').hidden = false
  $('api-status').textContent = String(status)
  $('api-status').classList.toggle('error', status !== 200)
  $('output').textContent = body === null ? '(no JSON body)' : JSON.stringify(body, null, 2)
}

$('login').addEventListener('click', () => {
  location.assign(`/bff/login?returnTo=${encodeURIComponent(location.pathname)}`)
})
$('call-api').addEventListener('click', callApi)
$('logout').addEventListener('click', () => {
  // A plain navigation: the BFF ends the session, then sends the browser to the IdP to end its own.
  if (logoutUrl) location.assign(logoutUrl)
})

start().catch((err) => showProblem(`Could not reach the BFF: ${err.message}`))
