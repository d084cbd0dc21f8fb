#!/usr/bin/env bash
# The package as a user gets it: build, lint the package metadata (publint) and its types
# (arethetypeswrong, ESM only), pack it, install the tarball in a fresh project from the registry
# and use it there: the library on Hono, the ./node and ./redis entries, the command, and a Worker
# built by wrangler from the ./workers entry.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

echo "== build"
rm -rf dist
npm run build

echo "== publint"
npx publint --strict

echo "== arethetypeswrong"
npx attw --pack . --profile esm-only --no-emoji --no-color

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo "== pack into $scratch"
tarball=$(npm pack --silent --ignore-scripts --pack-destination "$scratch" | tail -1)
tar -tzf "$scratch/$tarball" > "$scratch/files.txt"
echo "$tarball: $(du -k "$scratch/$tarball" | cut -f1) KB, $(wc -l < "$scratch/files.txt") files"
# Nothing of the demo ships: no embedded IdP, no entry that could start it.
if grep -E '/demo/|/server\.(js|d\.ts)$' "$scratch/files.txt"; then
  echo "check-package: the tarball carries demo files" >&2
  exit 1
fi

echo "== install the tarball in a scratch project"
mkdir "$scratch/app"
cd "$scratch/app"
npm init -y >/dev/null
npm pkg set type=module
npm install --no-audit --no-fund --loglevel=error "../$tarball" hono
if grep -rlE "from ['\"](oidc-provider|tsx)['\"]|import\(['\"](oidc-provider|tsx)" \
  node_modules/bff-session-broker/dist; then
  echo "check-package: a published file imports oidc-provider or tsx" >&2
  exit 1
fi

cat > smoke.js <<'JS'
import { mkdirSync, writeFileSync } from 'node:fs'
import { Hono } from 'hono'
import { createBff, optionsFromEnv, parseConfig, notFound, ConfigError } from 'bff-session-broker'
import { startNode, nodeForward, nodeConfigFromEnv } from 'bff-session-broker/node'
import { redisStore, redisReplayGuard } from 'bff-session-broker/redis'

for (const f of [startNode, nodeForward, nodeConfigFromEnv, redisStore, redisReplayGuard, notFound, parseConfig]) {
  if (typeof f !== 'function') throw new Error(`not a function: ${f}`)
}
// ./testing needs vitest (an optional peer): resolve it without loading it.
import.meta.resolve('bff-session-broker/testing')

const env = {
  BFF_ISSUER: 'http://localhost:9', // nothing listens: health reports the IdP unreachable
  BFF_CLIENT_ID: 'client',
  BFF_CLIENT_SECRET: 'client-secret',
  BFF_SESSION_SECRET: 'x'.repeat(32),
  BFF_BASE_URL: 'http://localhost:3000',
  BFF_IDP_TIMEOUT: '2',
}
// Options written by hand; a mistake stops createBff at once, naming the option.
const options = {
  issuer: 'http://localhost:9', // nothing listens: health reports the IdP unreachable
  clientId: 'client',
  clientSecret: 'client-secret',
  baseUrl: 'http://localhost:3000',
  sessionSecret: 'x'.repeat(32),
  idpTimeoutSeconds: 2,
}
try {
  createBff({ ...options, clientId: '' })
  throw new Error('createBff accepted an empty clientId')
} catch (err) {
  if (!(err instanceof ConfigError) || err.problems[0] !== '"clientId" must be a non-empty string') throw err
}
const app = new Hono()
app.route('/', createBff(options))
// The same BFF from the environment's BFF_* settings.
for (const bff of [app, createBff(optionsFromEnv(env))]) {
  const res = await bff.request('/bff/health')
  const body = await res.json()
  if (typeof body.status !== 'string') throw new Error(`unexpected health answer: ${JSON.stringify(body)}`)
  console.log(`/bff/health: ${res.status} ${JSON.stringify(body)}`)
}

// The whole Node server from the package: no files at / by default in production, the
// operator's SPA from BFF_SPA_DIR.
const bare = await startNode({ ...env, PORT: '0', BFF_BASE_URL: undefined })
try {
  const page = await fetch(`${bare.url}/`)
  if (page.status !== 404) throw new Error(`startNode without BFF_SPA_DIR: GET / answered ${page.status}`)
} finally {
  await bare.close()
}
mkdirSync('site', { recursive: true })
writeFileSync('site/index.html', '<!doctype html><title>site</title>')
const server = await startNode({ ...env, PORT: '0', BFF_BASE_URL: undefined, BFF_SPA_DIR: 'site' })
try {
  const page = await fetch(`${server.url}/`)
  const type = page.headers.get('content-type') ?? ''
  if (page.status !== 200 || !type.includes('text/html')) {
    throw new Error(`startNode: GET / answered ${page.status} ${type}`)
  }
  console.log(`startNode: ${server.url}/ answered ${page.status} ${type} from BFF_SPA_DIR`)
} finally {
  await server.close()
}
JS
node smoke.js

echo "== the types, as a TypeScript user (nodenext, strict, skipLibCheck) sees them"
cat > types.ts <<'TS'
import { Hono } from 'hono'
import {
  createBff,
  optionsFromEnv,
  type BffOptions,
  type Config,
  type SessionStore,
} from 'bff-session-broker'
import { startNode, nodeConfigFromEnv, type NodeServer, type NodeSettings } from 'bff-session-broker/node'
import { redisStore } from 'bff-session-broker/redis'
import worker, { SessionIndexObject, SessionObject } from 'bff-session-broker/workers'
import { testStore, type StoreUnderTest } from 'bff-session-broker/testing'

const options: BffOptions = {
  issuer: new URL('https://idp.example.com'),
  clientId: 'bff',
  clientSecret: 'secret',
  baseUrl: 'https://app.example.com',
  sessionSecret: ['x'.repeat(32), 'y'.repeat(32)],
  routes: [{ prefix: '/api/', upstream: 'https://api.internal/' }],
}
new Hono().route('/', createBff(options))
const config: Config = optionsFromEnv({ BFF_ISSUER: 'https://idp.example.com' })
new Hono().route('/', createBff(config))
export const node: () => { config: Config; settings: NodeSettings } = () => nodeConfigFromEnv({})
export const server: () => Promise<NodeServer> = () => startNode({})
export const store = (redis: Parameters<typeof redisStore>[0]): SessionStore => redisStore(redis)
export const entry: (request: Request, env: never, ctx: never) => Promise<Response> = worker.fetch
export const contract: (name: string, make: () => Promise<StoreUnderTest>) => void = testStore
export { SessionIndexObject, SessionObject }
TS
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "strict": true,
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "target": "es2022",
    "lib": ["es2023", "dom"],
    "types": [],
    "skipLibCheck": true,
    "noEmit": true
  },
  "files": ["types.ts"]
}
JSON
"$root/node_modules/.bin/tsc" -p .

echo "== the command refuses to start the demo"
set +e
out=$(env -u BFF_ISSUER ./node_modules/.bin/bff-session-broker 2>&1)
rc=$?
set -e
echo "$out"
if [ "$rc" != 1 ] || ! grep -q BFF_ISSUER <<<"$out"; then
  echo "check-package: bff-session-broker without BFF_ISSUER should name it and exit 1 (rc=$rc)" >&2
  exit 1
fi

echo "== a Worker from the ./workers entry, installed without the Node adapter's packages"
# ioredis, undici and @hono/node-server are optional dependencies: a Workers project may leave
# them out (--omit=optional), and the Worker must build without them.
mkdir "$scratch/worker"
cd "$scratch/worker"
npm init -y >/dev/null
npm pkg set type=module
npm install --omit=optional --no-audit --no-fund --loglevel=error "../$tarball"
for pkg in ioredis undici @hono/node-server; do
  if [ -e "node_modules/$pkg" ]; then
    echo "check-package: --omit=optional still installed $pkg" >&2
    exit 1
  fi
done
test -f node_modules/bff-session-broker/schema/bff-config.schema.json ||
  { echo "check-package: the JSON Schema is not in the package" >&2; exit 1; }
cat > worker.js <<'JS'
export { default, SessionObject, SessionIndexObject } from 'bff-session-broker/workers'
JS
cat > wrangler.toml <<'TOML'
name = "bff-package-check"
main = "worker.js"
compatibility_date = "2026-04-20"

[[durable_objects.bindings]]
name = "BFF_SESSIONS"
class_name = "SessionObject"

[[durable_objects.bindings]]
name = "BFF_SESSION_INDEX"
class_name = "SessionIndexObject"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["SessionObject", "SessionIndexObject"]
TOML
"$root/node_modules/.bin/wrangler" deploy --dry-run --outdir out > wrangler.log 2>&1 ||
  { cat wrangler.log >&2; exit 1; }
grep -E 'Total Upload' wrangler.log || true
echo "== package check passed"
