/**
 * The config file's shape (`BFF_CONFIG`), in valibot: the one source of its TypeScript types, its
 * validation and its JSON Schema (schema/bff-config.schema.json, made by `npm run config:schema`).
 * Only the shape lives here; the rules shared with the `BFF_*` settings (URLs, route prefixes,
 * `openid` in the scopes) are applied by config.ts with the same code as for the environment.
 * Objects are strict: an unknown key is a typo to report, never something to ignore.
 */
import * as v from 'valibot'

const text = (description: string) =>
  v.pipe(v.string('must be a string'), v.nonEmpty('must not be empty'), v.description(description))

export const IdpSchema = v.strictObject({
  issuer: text('Issuer URL of the OpenID Provider (https; http only on localhost).'),
  clientId: text('Client id registered at the IdP.'),
  clientSecret: text(
    'Client secret registered at the IdP; usually "${NAME}" to read it from the environment.'
  ),
  scopes: v.optional(
    v.pipe(
      v.union(
        [v.array(text('A scope.'), 'must be an array of strings or a string'), v.string()],
        'must be an array of strings or a space-separated string'
      ),
      v.description(
        'Requested scopes: an array, or a space-separated string as in BFF_SCOPES; must include "openid". Default: openid profile email offline_access.'
      )
    )
  ),
  label: v.optional(text('Name shown on a login chooser.')),
})

export const RouteSchema = v.strictObject({
  prefix: text('Path prefix on the BFF, e.g. "/api/"; a plain path, not under /bff.'),
  upstream: text('Upstream base URL (http or https, no credentials, query or fragment).'),
})

/** IdP names end up in paths (`/bff/callback/<name>`): keep them plain. */
const IDP_NAME = /^[A-Za-z0-9_-]{1,64}$/

export const ConfigFileSchema = v.pipe(
  v.strictObject(
    {
      $schema: v.optional(v.pipe(v.string('must be a string'), v.description('For editors.'))),
      idps: v.optional(
        v.pipe(
          v.record(
            v.pipe(v.string(), v.regex(IDP_NAME, 'must be 1-64 letters, digits, "-" or "_"')),
            IdpSchema,
            'must be an object of IdPs by name'
          ),
          v.description(
            'The OpenID Providers by name; excludes BFF_ISSUER, BFF_CLIENT_ID, BFF_CLIENT_SECRET and BFF_SCOPES. One for now.'
          )
        )
      ),
      routes: v.optional(
        v.pipe(
          v.array(RouteSchema, 'must be an array of routes'),
          v.description('Proxy routes; excludes BFF_API.')
        )
      ),
    },
    'must be a JSON object'
  ),
  v.title('BFF config file (BFF_CONFIG)'),
  v.description('In string values ${NAME} is replaced by the environment variable NAME.')
)

export type ConfigFile = v.InferOutput<typeof ConfigFileSchema>
export type IdpEntry = v.InferOutput<typeof IdpSchema>
export type RouteEntry = v.InferOutput<typeof RouteSchema>
