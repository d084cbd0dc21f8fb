/**
 * Copies each docs/examples file into the fenced block marked `<!-- snippet: path -->` in README.md
 * and docs/*.md: `npx tsx scripts/sync-snippets.ts`. test/docs/snippets.test.ts fails while a block
 * differs from its file.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'

const docs = [
  'README.md',
  ...readdirSync('docs')
    .filter((n) => n.endsWith('.md'))
    .map((n) => `docs/${n}`),
]
for (const doc of docs) {
  const text = readFileSync(doc, 'utf8')
  const synced = text.replace(
    /(<!-- snippet: (\S+) -->\n\n?(`{3,})([^\n]*)\n)([\s\S]*?)\n\3\n/g,
    (_, head: string, file: string, fence: string) =>
      `${head}${readFileSync(file, 'utf8').replace(/\n$/, '')}\n${fence}\n`
  )
  if (synced !== text) {
    writeFileSync(doc, synced)
    console.log(`synced ${doc}`)
  }
}
