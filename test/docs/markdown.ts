/**
 * Reading the user documentation (README.md and docs/*.md) the way the checks in this folder need
 * it: fenced blocks with the marker before them, links, headings, `BFF_*` names and file paths.
 * Plain line scanning: the documents are ours and simple, and a parser would hide what is checked.
 */
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

/** Repository-relative paths of every user document (CHANGELOG.md is history: it names old paths). */
export function documents(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`)
  return ['README.md', 'SECURITY.md', ...docs]
}

export function read(relative: string): string {
  return readFileSync(path.join(ROOT, relative), 'utf8')
}

/** `<!-- snippet: docs/examples/x.ts -->` or `<!-- commands: id -->` right before a fence. */
export interface Marker {
  kind: 'snippet' | 'commands'
  value: string
}

export interface Block {
  /** The document, e.g. `README.md`. */
  doc: string
  /** 1-based line of the opening fence. */
  line: number
  /** The fence's info string, e.g. `ts`; empty when there is none. */
  lang: string
  /** The lines between the fences, joined with `\n` (no final newline). */
  body: string
  marker?: Marker
}

const FENCE = /^(`{3,}|~{3,})\s*([\w-]*)\s*$/
const MARKER = /^<!-- (snippet|commands): (\S+) -->$/

/** Every top-level fenced block of a document, with the marker on the last non-blank line before it. */
export function blocks(doc: string): Block[] {
  const lines = read(doc).split('\n')
  const found: Block[] = []
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!)
    if (!open) continue
    const fence = open[1]!
    let end = i + 1
    while (end < lines.length && !lines[end]!.startsWith(fence)) end++
    if (end === lines.length) throw new Error(`${doc}:${i + 1}: a fence that never closes`)
    let before = i - 1
    while (before >= 0 && lines[before]!.trim() === '') before--
    const marked = before >= 0 ? MARKER.exec(lines[before]!.trim()) : null
    found.push({
      doc,
      line: i + 1,
      lang: open[2] ?? '',
      body: lines.slice(i + 1, end).join('\n'),
      ...(marked ? { marker: { kind: marked[1] as Marker['kind'], value: marked[2]! } } : {}),
    })
    i = end
  }
  return found
}

/** A document's text outside its fenced blocks (links and names in code are not prose). */
export function prose(doc: string): string {
  let inside: string | undefined
  const kept: string[] = []
  for (const line of read(doc).split('\n')) {
    const fence = FENCE.exec(line)?.[1]
    if (inside === undefined && fence) inside = fence
    else if (inside !== undefined && line.startsWith(inside)) inside = undefined
    else if (inside === undefined) kept.push(line)
  }
  return kept.join('\n')
}

/** `[text](target)` links of a document's prose; images too. */
export function links(doc: string): string[] {
  return [...prose(doc).matchAll(/\]\(([^)\s]+)\)/g)].map((match) => match[1]!)
}

/** GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

export function anchors(doc: string): Set<string> {
  const headings = [...prose(doc).matchAll(/^#{1,6}\s+(.+)$/gm)].map((match) => match[1]!)
  return new Set(headings.map(slug))
}

/** `BFF_*` names in a text: whole names only (not `DEMO_BFF_CLIENT`, not the prefix `BFF_REDIS_`). */
export function settingNames(text: string): Set<string> {
  return new Set(text.match(/\bBFF_[A-Z0-9_]*[A-Z0-9]\b/g) ?? [])
}

/** Every `.ts` file under a repository directory. */
export function sourceFiles(dir: string): string[] {
  const walk = (relative: string): string[] =>
    readdirSync(path.join(ROOT, relative), { withFileTypes: true }).flatMap((entry) => {
      const child = `${relative}/${entry.name}`
      if (entry.isDirectory()) return walk(child)
      return entry.name.endsWith('.ts') ? [child] : []
    })
  return walk(dir)
}
