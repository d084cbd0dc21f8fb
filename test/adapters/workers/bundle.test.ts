/**
 * The deployable Worker bundle (`npm run build:worker`, built by global-setup.ts): small enough,
 * and importing nothing the Workers runtime lacks. esbuild's metafile lists the bundle's external
 * imports and every input that went into it.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { workerBuild } from './workerd.ts'

interface Metafile {
  inputs: Record<string, unknown>
  outputs: Record<string, { imports: Array<{ path: string; external?: boolean }> }>
}

// Node modules the Workers runtime provides under `nodejs_compat` (developers.cloudflare.com/
// workers/runtime-apis/nodejs); without the flag it provides none.
const WORKERS_NODE_MODULES = new Set([
  'assert',
  'async_hooks',
  'buffer',
  'crypto',
  'diagnostics_channel',
  'dns',
  'events',
  'net',
  'path',
  'process',
  'querystring',
  'stream',
  'string_decoder',
  'timers',
  'tls',
  'url',
  'util',
  'zlib',
])

const build = await workerBuild()
const bundle = readFileSync(build.scriptPath)
const meta = JSON.parse(
  readFileSync(path.join(path.dirname(build.scriptPath), 'bundle-meta.json'), 'utf8')
) as Metafile
const output = Object.entries(meta.outputs).find(([file]) => file.endsWith('worker.js'))![1]
const externals = output.imports.filter((i) => i.external).map((i) => i.path)

describe('the Worker bundle', () => {
  it('is under 1 MiB gzipped', () => {
    expect(gzipSync(bundle).length).toBeLessThan(1024 * 1024)
  })

  it('imports only runtime modules the Workers runtime has', () => {
    const nodeCompat = build.compatibilityFlags.some((flag) => flag.startsWith('nodejs_compat'))
    for (const specifier of externals) {
      if (specifier.startsWith('cloudflare:')) continue
      expect(specifier, 'a bare import would fail at deploy time').toMatch(/^node:/)
      expect(nodeCompat, `${specifier} needs nodejs_compat`).toBe(true)
      expect(WORKERS_NODE_MODULES.has(specifier.slice('node:'.length)), specifier).toBe(true)
    }
    // No nodejs_compat in wrangler.toml: not a single node:* import.
    if (!nodeCompat) expect(externals.filter((s) => s.startsWith('node:'))).toEqual([])
  })

  it('contains none of the Node-only parts', () => {
    const inputs = Object.keys(meta.inputs)
    // The OpenTelemetry SDK and exporters are Node's (OTLP export): a Worker only propagates.
    const nodeOnly = ['src/adapters/node/', 'src/demo/', 'node_modules/ioredis/', '@opentelemetry/']
    for (const part of nodeOnly) {
      expect(inputs.filter((input) => input.includes(part))).toEqual([])
    }
    expect(inputs.some((input) => input.endsWith('src/adapters/workers/worker.ts'))).toBe(true)
  })
})
