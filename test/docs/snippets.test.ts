/**
 * The user documentation against the code, so that it cannot go stale unnoticed:
 * - every code block in README.md and docs/*.md is either a byte-for-byte copy of a file in
 *   docs/examples/ (which the type check covers and examples.test.ts runs) or shell commands, each
 *   of which is listed below with what runs it;
 * - every `BFF_*` name the sources mention is in docs/configuration.md, and every one the docs
 *   name exists in the sources; every error code is in docs/routes.md and every log event in
 *   docs/operations.md;
 * - links, anchors and repository paths lead somewhere.
 */
import { existsSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import {
  ROOT,
  anchors,
  blocks,
  documents,
  links,
  prose,
  read,
  settingNames,
  sourceFiles,
  type Block,
} from './markdown.ts'

/** Code blocks that must be copies of a docs/examples file. */
const SNIPPET_LANGS = new Set(['ts', 'typescript', 'js', 'json', 'toml', 'yaml'])
const SHELL_LANGS = new Set(['sh', 'bash', 'shell'])
/** Diagrams and trees: nothing to run. */
const TEXT_LANGS = new Set(['text'])

/**
 * Every shell command the documents show, with what runs it. `proof` checks that the runner named
 * still does, so removing a command from CI or a test fails here rather than leaving the docs
 * promising something nobody runs.
 */
const COMMANDS: Record<string, { ranBy: string; proof: () => void }> = {
  'npm install && npm start': {
    ranBy:
      '.ci/run installs with npm ci; test/adapters/node/server.test.ts starts the demo from the entry `npm start` runs and logs in as demo / demo',
    proof() {
      expect(read('.ci/run')).toMatch(/^npm ci\b/m)
      const start = JSON.parse(read('package.json')).scripts.start as string
      const entry = /src\/\S+\.ts/.exec(start)?.[0]
      expect(entry, 'npm start runs a source file').toBeDefined()
      expect(read('test/adapters/node/server.test.ts')).toContain(`'${entry}'`)
    },
  },
  'openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out bff-client-key.pem': {
    ranBy:
      'test/docs/client-key.test.ts runs the block, loads the key as BFF_CLIENT_KEY and checks an assertion it signs with the public key',
    proof: () =>
      expect(read('test/docs/client-key.test.ts')).toContain(
        "blockOf('docs/configuration.md', 'client-key')"
      ),
  },
  'openssl pkey -in bff-client-key.pem -pubout -out bff-client-key.pub.pem': {
    ranBy: 'test/docs/client-key.test.ts, as above',
    proof: () => expect(read('test/docs/client-key.test.ts')).toContain('bff-client-key.pub.pem'),
  },
  'npm test': {
    ranBy: '.ci/run',
    proof: () => expect(read('.ci/run')).toMatch(/^npm test$/m),
  },
  'npm install bff-session-broker': {
    ranBy: 'scripts/check-package.sh (from .ci/run) installs the packed tarball in a fresh project',
    proof() {
      expect(read('.ci/run')).toContain('bash scripts/check-package.sh')
      expect(read('scripts/check-package.sh')).toMatch(/npm install .*\$tarball/)
    },
  },
  'npx bff-session-broker': {
    ranBy:
      "test/docs/examples.test.ts runs the command's source with the README's settings and logs in; scripts/check-package.sh runs the installed command",
    proof() {
      expect(read('test/docs/examples.test.ts')).toContain(
        "blockOf('README.md', 'node-production')"
      )
      expect(read('scripts/check-package.sh')).toContain('node_modules/.bin/bff-session-broker')
    },
  },
  'npx wrangler deploy': {
    ranBy:
      "test/docs/examples.test.ts builds the README's Worker project with `wrangler deploy --dry-run`, as scripts/check-package.sh does from the tarball; uploading needs a Cloudflare account",
    proof() {
      expect(read('test/docs/examples.test.ts')).toContain("'--dry-run'")
      expect(read('scripts/check-package.sh')).toContain('deploy --dry-run')
    },
  },
  'npx wrangler secret put BFF_CLIENT_SECRET': {
    ranBy:
      'needs a Cloudflare account, so nothing runs it; test/adapters/workers/worker.test.ts shows the Worker answering 500 invalid_config, naming the setting, until it is there',
    proof: () => expect(read('test/adapters/workers/worker.test.ts')).toContain('invalid_config'),
  },
  'npx wrangler secret put BFF_SESSION_SECRET': {
    ranBy: 'as BFF_CLIENT_SECRET',
    proof: () => expect(read('test/adapters/workers/worker.test.ts')).toContain('invalid_config'),
  },
}

/** `export NAME=value`: settings of the README's Node block, run by examples.test.ts. */
const EXPORT = /^export ([A-Z][A-Z0-9_]*)=\S+$/

const allBlocks = documents().flatMap(blocks)
const where = (block: Block) => `${block.doc}:${block.line}`

describe('code blocks in the docs', () => {
  it('are found (the parser sees the README)', () => {
    expect(allBlocks.filter((b) => b.doc === 'README.md').length).toBeGreaterThanOrEqual(5)
  })

  it('are each a snippet, shell commands or a diagram', () => {
    for (const block of allBlocks) {
      const known = SNIPPET_LANGS.has(block.lang) || SHELL_LANGS.has(block.lang)
      expect(known || TEXT_LANGS.has(block.lang), `${where(block)}: block "${block.lang}"`).toBe(
        true
      )
    }
  })

  it('that hold code are byte-for-byte copies of their docs/examples file', () => {
    for (const block of allBlocks.filter((b) => SNIPPET_LANGS.has(b.lang))) {
      expect(block.marker?.kind, `${where(block)}: no <!-- snippet: … --> before it`).toBe(
        'snippet'
      )
      const file = block.marker!.value
      expect(file, `${where(block)}`).toMatch(/^docs\/examples\/[\w.-]+$/)
      expect(existsSync(path.join(ROOT, file)), `${where(block)}: ${file} is missing`).toBe(true)
      expect(`${block.body}\n`, `${where(block)} differs from ${file}`).toBe(read(file))
    }
  })

  it('leave no example unshown', () => {
    const shown = new Set(allBlocks.map((block) => block.marker?.value))
    for (const name of readdirSync(path.join(ROOT, 'docs/examples'))) {
      expect(shown.has(`docs/examples/${name}`), `docs/examples/${name} is in no document`).toBe(
        true
      )
    }
  })

  it('of shell commands hold only commands something runs', () => {
    const shells = allBlocks.filter((b) => SHELL_LANGS.has(b.lang))
    expect(shells.length).toBeGreaterThan(0)
    for (const block of shells) {
      expect(block.marker?.kind, `${where(block)}: no <!-- commands: … --> before it`).toBe(
        'commands'
      )
      for (const raw of block.body.split('\n')) {
        const command = raw.replace(/\s+#.*$/, '').trim()
        if (command === '') continue
        if (EXPORT.test(command)) {
          // Settings: examples.test.ts starts the command with exactly these names.
          expect(block.marker!.value, `${where(block)}: ${command}`).toBe('node-production')
          continue
        }
        const entry = COMMANDS[command]
        expect(entry, `${where(block)}: nothing is known to run "${command}"`).toBeDefined()
        entry!.proof()
      }
    }
  })
})

describe('settings in the docs', () => {
  const inSource = new Set(sourceFiles('src').flatMap((file) => [...settingNames(read(file))]))
  const reference = settingNames(read('docs/configuration.md'))

  it('docs/configuration.md describes every BFF_* name the sources read', () => {
    expect(inSource.size).toBeGreaterThan(20)
    const missing = [...inSource].filter((name) => !reference.has(name))
    expect(missing, 'in src/ but not in docs/configuration.md').toEqual([])
  })

  it('every BFF_* name the docs mention exists in the sources', () => {
    for (const doc of documents()) {
      const unknown = [...settingNames(read(doc))].filter((name) => !inSource.has(name))
      expect(unknown, `${doc} names settings the code does not know`).toEqual([])
    }
  })
})

describe('answers and logs in the docs', () => {
  it('docs/routes.md lists every error code', () => {
    const union = /export type BffErrorCode =([^;]*?)\n\n/.exec(read('src/core/errors.ts'))?.[1]
    const codes = [...(union ?? '').matchAll(/'([a-z_]+)'/g)].map((match) => match[1]!)
    expect(codes.length).toBeGreaterThan(15)
    const routes = read('docs/routes.md')
    expect(codes.filter((code) => !routes.includes(`\`${code}\``))).toEqual([])
  })

  it('docs/operations.md lists every log event', () => {
    const events = new Set<string>()
    const logCall =
      /\b(?:log|jsonLogger)(?:\?\.)?\(\s*(?:'(?:info|warn|error)'|[a-z]\w*),\s*'([a-z_]+(?:\.[a-z_]+)*)'/g
    for (const file of sourceFiles('src').filter((f) => !f.startsWith('src/demo/'))) {
      const text = read(file)
      for (const match of text.matchAll(logCall)) events.add(match[1]!)
      for (const match of text.matchAll(/\bevent: '([a-z_]+(?:\.[a-z_]+)+)'/g))
        events.add(match[1]!)
    }
    expect(events.has('request.failed') && events.has('login.success')).toBe(true)
    const operations = read('docs/operations.md')
    expect([...events].filter((event) => !operations.includes(`\`${event}\``))).toEqual([])
  })
})

describe('links and paths in the docs', () => {
  it('relative links lead to files and headings that exist', () => {
    for (const doc of documents()) {
      for (const link of links(doc)) {
        if (/^[a-z]+:/i.test(link)) continue
        const [file = '', anchor] = link.split('#')
        const target = file ? path.posix.join(path.posix.dirname(doc), file) : doc
        expect(existsSync(path.join(ROOT, target)), `${doc}: ${link}`).toBe(true)
        if (anchor) expect(anchors(target).has(anchor), `${doc}: ${link}`).toBe(true)
      }
    }
  })

  it('repository paths in backticks exist', () => {
    // Written by the tools, not kept in the repository.
    const outputs = ['bench/results/', 'dist/']
    for (const doc of documents()) {
      const paths = prose(doc).matchAll(
        /`((?:src|test|e2e|bench|scripts|docs|schema|public)\/[^`\s]*)`/g
      )
      for (const [, repoPath = ''] of paths) {
        if (outputs.some((output) => repoPath.startsWith(output))) continue
        expect(existsSync(path.join(ROOT, repoPath)), `${doc}: ${repoPath}`).toBe(true)
      }
    }
  })
})

describe('the package names the examples import', () => {
  const tsconfig = JSON.parse(read('tsconfig.json'))
  const paths: Record<string, string[]> = tsconfig.compilerOptions.paths
  const exportsMap: Record<string, { types: string } | string> = JSON.parse(
    read('package.json')
  ).exports

  it('are type-checked with the rest (tsconfig.json includes docs/examples)', () => {
    expect(tsconfig.include).toContain('docs/examples')
  })

  it("map to the sources of the package's entries", () => {
    for (const [key, entry] of Object.entries(exportsMap)) {
      if (typeof entry === 'string') continue // ./package.json
      const name = key === '.' ? 'bff-session-broker' : `bff-session-broker/${key.slice(2)}`
      const source = `./${entry.types.replace(/^\.\/dist\//, 'src/').replace(/\.d\.ts$/, '.ts')}`
      expect(paths[name], `tsconfig.json paths["${name}"]`).toEqual([source])
    }
  })
})
