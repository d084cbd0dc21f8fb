/**
 * `GET /bff/idps`: the IdPs a login chooser offers, `[{ name, label }]` in configured order; each
 * logs in at `/bff/login?idp=<name>`. Public (the logged-out page asks), and nothing secret in it.
 */
import { Hono } from 'hono'
import type { BffServices } from '../services.ts'

export function idpsRoute(s: BffServices) {
  const body = JSON.stringify(
    s.idps.list.map(({ config }) => ({ name: config.name, label: config.label }))
  )
  return new Hono().get('/bff/idps', (c) => {
    c.header('Cache-Control', 'no-store')
    c.header('Content-Type', 'application/json')
    return c.body(body)
  })
}
