import { createBffClient } from '/bff-client.js'

const bff = createBffClient()
const status = document.getElementById('status')
bff.addEventListener('session_ended', (event) => {
  // logout, backchannel_logout, admin_revoke, refresh_failed, session_expired, or unauthenticated
  // (a 401 that gave no reason): every tab hears it at once.
  status.textContent = `You are logged out (${event.detail.reason}).`
})
bff.addEventListener('session_expiring', (event) => {
  const at = new Date(event.detail.expiresAt * 1000).toLocaleTimeString()
  status.textContent = `Your session ends at ${at}.`
})

// Not logged in: a 401, and off to the login (the default), back to this page afterwards.
const me = await bff.fetch('/bff/user')
if (me.ok) {
  const { logoutUrl } = await me.json()
  document.getElementById('logout').onclick = () => bff.logout(logoutUrl)
  bff.watch() // listen to /bff/events while logged in
  const orders = await bff.fetch('/api/orders') // X-CSRF added; a 401 acted on as configured
  status.textContent = `${(await orders.json()).length} orders`
}
