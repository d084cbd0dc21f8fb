// The demo SPA: it never sees a token. It asks the BFF who is logged in and calls the API through
// the BFF's same-origin proxy, always with the X-CSRF header the BFF requires.
const $ = (id) => document.getElementById(id)
const csrf = { 'X-CSRF': '1' }
let logoutUrl = null

async function loadUser() {
  const params = new URLSearchParams(location.search)
  const res = await fetch('/bff/user', { headers: csrf })
  if (res.status === 401) {
    $('status').textContent = params.get('error')
      ? `Not logged in (${params.get('error')}).`
      : 'You are not logged in.'
    show({ login: true })
    return
  }
  if (!res.ok) {
    $('status').textContent = `The BFF answered ${res.status}.`
    $('status').className = 'error'
    return
  }
  const user = await res.json()
  logoutUrl = user.logoutUrl
  const name = user.claims.name ?? user.claims.email ?? user.sub
  $('status').textContent =
    `Logged in as ${name}. Session ends ${new Date(user.expiresAt * 1000).toLocaleString()}.`
  show({ api: true, logout: true })
}

function show({ login = false, api = false, logout = false }) {
  $('login').hidden = !login
  $('call-api').hidden = !api
  $('logout').hidden = !logout
}

$('login').addEventListener('click', () => {
  location.href = `/bff/login?returnTo=${encodeURIComponent(location.pathname)}`
})

$('call-api').addEventListener('click', async () => {
  const out = $('output')
  out.hidden = false
  const res = await fetch('/api/hello', { headers: csrf })
  const body = await res.json().catch(() => ({}))
  if (res.status === 401) {
    out.textContent = JSON.stringify(body, null, 2)
    $('status').textContent = 'Your session has ended. Log in again to continue.'
    show({ login: true })
    return
  }
  out.textContent = JSON.stringify(body, null, 2)
})

$('logout').addEventListener('click', () => {
  if (logoutUrl) location.href = logoutUrl
})

loadUser().catch((err) => {
  $('status').textContent = `Could not reach the BFF: ${err.message}`
  $('status').className = 'error'
})
