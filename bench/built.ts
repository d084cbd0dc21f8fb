/**
 * The BFF under test as it runs in production: built JavaScript. Installed from the package, the
 * BFF is tsc's output (dist/); tsx, which runs the TypeScript sources for `npm start` and the
 * tests, compiles with esbuild's `keepNames`, which wraps every function made at run time in a
 * call that redefines its name: some 25 µs of a proxied call's ~160 µs of CPU (measured with
 * bench/compare.ts). So the bench runs `bench/bff-server.ts` bundled by esbuild without it (types
 * stripped, nothing else changed; the packages stay imports), as tsc would emit it.
 */
import { build } from 'esbuild'
import { basename, dirname, join } from 'node:path'

const built = new Map<string, Promise<string>>()

/** `entry` (a .ts file) built once into a .mjs beside it under .build/; resolves with its path. */
export function builtEntry(entry: string): Promise<string> {
  let output = built.get(entry)
  if (!output) {
    const outfile = join(dirname(entry), '.build', basename(entry).replace(/\.ts$/, '.mjs'))
    output = build({
      entryPoints: [entry],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      logLevel: 'warning',
    }).then(() => outfile)
    built.set(entry, output)
  }
  return output
}
