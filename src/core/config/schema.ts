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

// A JWK's members are checked by the config rules (client-key.ts), which say what is wrong.
const jwk = v.pipe(
  v.looseObject({ kty: v.string('must be a string') }, 'must be a JWK object'),
  v.description('A private JWK object.')
)

export const IdpSchema = v.strictObject({
  issuer: text('Issuer URL of the OpenID Provider (https; http only on localhost).'),
  clientId: text('Client id registered at the IdP.'),
  clientSecret: v.optional(
    text(
      'Client secret registered at the IdP; usually "${NAME}" to read it from the environment. Required unless clientAuth is private_key_jwt (then refused).'
    )
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
  clientAuth: v.optional(
    v.pipe(
      v.picklist(
        ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
        'must be one of client_secret_basic, client_secret_post, private_key_jwt'
      ),
      v.description(
        'Client authentication at the token endpoint; default BFF_CLIENT_AUTH, else client_secret_basic. private_key_jwt signs client assertions with clientKey.'
      )
    )
  ),
  clientKey: v.optional(
    v.pipe(
      v.union(
        [
          text('A private JWK as JSON text, or PKCS#8 PEM text; usually "${NAME}".'),
          jwk,
          v.pipe(
            v.array(
              v.union([text('A private JWK as JSON text, or PKCS#8 PEM text.'), jwk]),
              'must be an array of keys'
            ),
            v.minLength(1, 'must not be empty')
          ),
        ],
        'must be a private JWK (object or JSON text), PKCS#8 PEM text, or an array of them'
      ),
      v.description(
        'With clientAuth private_key_jwt: the private key signing client assertions (RSA, EC P-256/384/521 or Ed25519). An array rotates: the first signs.'
      )
    )
  ),
  par: v.optional(
    v.pipe(
      v.boolean('must be true or false'),
      v.description(
        'Pushed authorization requests (RFC 9126): the browser sees only client_id and request_uri. Used anyway when the IdP requires them. Default false.'
      )
    )
  ),
  dpop: v.optional(
    v.pipe(
      v.boolean('must be true or false'),
      v.description(
        'DPoP (RFC 9449): a key pair per session, tokens bound to it, a proof on every token and upstream call. Default false.'
      )
    )
  ),
  profile: v.optional(
    v.pipe(
      v.picklist(['fapi2'], 'must be fapi2'),
      v.description(
        'fapi2: the FAPI 2.0 Security Profile. Turns on par, dpop and private_key_jwt (clientKey required, signing PS256, ES256 or EdDSA) and refuses settings that break them; the IdP must offer PAR, the iss response parameter and those algorithms.'
      )
    )
  ),
  label: v.optional(
    v.pipe(
      text("Name shown on a login chooser (GET /bff/idps); default the IdP's name."),
      v.maxLength(100, 'must be at most 100 characters')
    )
  ),
  claims: v.optional(
    v.pipe(
      v.record(v.string(), text('A dot path into the ID token / userinfo claims.')),
      v.description('Normalised claim name -> dot path, e.g. { "roles": "realm_access.roles" }.')
    )
  ),
})

const list = (description: string) =>
  v.pipe(
    v.array(text('A value.'), 'must be an array of strings'),
    v.minLength(1, 'must not be empty'),
    v.description(description)
  )
const flag = (description: string) =>
  v.pipe(v.boolean('must be true or false'), v.description(description))
const seconds = (description: string) =>
  v.pipe(
    v.number('must be a number'),
    v.integer('must be a whole number'),
    v.minValue(0, 'must be 0 or more'),
    v.description(description)
  )
const claimValue = v.union(
  [v.string(), v.boolean()],
  'must be a string, a boolean or an array of them'
)

export const RouteSchema = v.strictObject({
  prefix: text('Path prefix on the BFF, e.g. "/api/"; a plain path, not under /bff.'),
  upstream: text('Upstream base URL (http or https, no credentials, query or fragment).'),
  methods: v.optional(
    list(
      'Methods proxied; default GET, HEAD, POST, PUT, PATCH, DELETE. Never TRACE, CONNECT or WebDAV.'
    )
  ),
  token: v.optional(
    v.pipe(
      v.picklist(
        ['user', 'optional', 'none', 'client', 'exchange'],
        'must be one of user, optional, none, client, exchange'
      ),
      v.description(
        'user (default: a session is required), optional, none (no token), client (the BFF\'s client-credentials token), exchange (RFC 8693, for "resource").'
      )
    )
  ),
  idps: v.optional(list('Only sessions from these IdPs (403 forbidden otherwise).')),
  require: v.optional(
    v.pipe(
      v.record(
        v.string(),
        v.union(
          [claimValue, v.pipe(v.array(claimValue), v.minLength(1, 'must not be empty'))],
          'must be a string, a boolean or an array of them'
        ),
        'must be an object of claim name -> value'
      ),
      v.description(
        'Normalised claims the user must have: a value equals (or is in an array claim); an array means any of.'
      )
    )
  ),
  scopes: v.optional(list('Scopes the token must carry (client: the scopes requested).')),
  acr: v.optional(
    v.pipe(
      v.union(
        [text('An acr value.'), list('acr values.')],
        'must be a string or an array of strings'
      ),
      v.description("Step-up: the session's acr must be one of these (401 step_up_required).")
    )
  ),
  maxAge: v.optional(seconds('Step-up: the user authenticated within this many seconds.')),
  resource: v.optional(text('RFC 8707 resource the token is for (absolute URI).')),
  websocket: v.optional(flag('WebSocket upgrades allowed on this route.')),
  authorize: v.optional(
    v.strictObject({
      url: text('The policy decision point (OPA REST shape), http(s).'),
      cacheSeconds: v.optional(seconds('How long a decision is kept per session and route.')),
    })
  ),
  tls: v.optional(
    v.strictObject({
      cert: v.optional(text('Client certificate (PEM), usually "${NAME}".')),
      key: v.optional(text('Client private key (PEM), usually "${NAME}".')),
      ca: v.optional(text('CA certificate(s) the upstream is checked against (PEM).')),
      binding: v.optional(text('Workers: the mtls_certificates binding to use.')),
    })
  ),
})

/** IdP names end up in paths (`/bff/callback/<name>`): keep them plain. */
export const IDP_NAME = /^[A-Za-z0-9_-]{1,64}$/

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
            'The OpenID Providers by name; excludes BFF_ISSUER, BFF_CLIENT_ID, BFF_CLIENT_SECRET and BFF_SCOPES. The first is the default of /bff/login; the redirect URI of each is BFF_BASE_URL/bff/callback/<name>, <name> being its key.'
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
