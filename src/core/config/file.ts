/**
 * Reading the config file (`BFF_CONFIG`) into its validated shape: JSON text or an already parsed
 * object (a Workers `[vars]` table), `${NAME}` replaced from the environment, then the schema. No
 * file system here: the Node adapter reads the file, Workers hand over the binding.
 */
import * as v from 'valibot'
import { ConfigFileSchema, type ConfigFile } from './schema.ts'

type Env = Readonly<Record<string, string | undefined>>

export interface FileResult {
  /** The file, when its shape is valid (other problems may remain). */
  file?: ConfigFile
  /** Paths of values with a missing `${NAME}`: reported once, not again by later checks. */
  unresolved: Set<string>
  /** The top-level keys the file sets, valid or not. */
  keys: string[]
  /** One line per problem, each `BFF_CONFIG <path>: <why>`. */
  problems: string[]
}

/** `idps.corp.issuer`, `routes[1].upstream`; odd keys quoted so the path stays unambiguous. */
export function jsonPath(keys: readonly unknown[]): string {
  let path = ''
  for (const key of keys) {
    if (typeof key === 'number') path += `[${key}]`
    else if (/^[A-Za-z_$][\w$]*$/.test(String(key))) path += path ? `.${String(key)}` : String(key)
    else path += `[${JSON.stringify(String(key))}]`
  }
  return path
}

/** The problem line for `path` (empty: the file as a whole). */
export function fileProblem(path: string, why: string): string {
  return path ? `BFF_CONFIG ${path}: ${why}` : `BFF_CONFIG: ${why}`
}

export function readConfigFile(source: unknown, env: Env): FileResult {
  const problems: string[] = []
  const unresolved = new Set<string>()
  let data = source
  if (typeof source === 'string') {
    try {
      data = JSON.parse(source)
    } catch (err) {
      return { keys: [], unresolved, problems: [fileProblem('', syntaxError(source, err))] }
    }
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return { keys: [], unresolved, problems: [fileProblem('', 'must be a JSON object')] }
  }
  const keys = Object.keys(data)
  data = substitute(data, [], env, (path, name) => {
    unresolved.add(path)
    problems.push(fileProblem(path, `environment variable ${name} is not set`))
  })

  const result = v.safeParse(ConfigFileSchema, data, { abortEarly: false })
  const reported = new Set<string>()
  for (const issue of result.issues ?? []) {
    const path = jsonPath(issue.path?.map((item) => item.key) ?? [])
    reported.add(path)
    if (!unresolved.has(path)) problems.push(fileProblem(path, messageOf(issue)))
  }
  // valibot's records drop these keys without a word: a route's `require` would lose a claim.
  const dropped = prototypeKeys(data, []).filter((path) => !reported.has(path))
  for (const path of dropped) problems.push(fileProblem(path, 'is not a usable key'))
  if (!result.success || dropped.length) return { keys, unresolved, problems }

  return { file: result.output, keys, unresolved, problems }
}

/**
 * Where the JSON breaks, as line and column. Only the position is taken from the parser's message:
 * V8 also quotes the text around it, which may be a secret written into the file.
 */
function syntaxError(text: string, err: unknown): string {
  const position = /at position (\d+)/.exec(String((err as Error)?.message))?.[1]
  if (position === undefined) return 'is not valid JSON'
  const before = text.slice(0, Number(position)).split('\n')
  return `is not valid JSON: error at line ${before.length} column ${before.at(-1)!.length + 1}`
}

function messageOf(issue: v.BaseIssue<unknown>): string {
  // Strict objects: "never" expected is a key that does not exist, nothing received a missing one.
  if (issue.type === 'strict_object') {
    return issue.expected === 'never' ? 'is not a known key' : 'is required'
  }
  return issue.message
}

const PROTOTYPE_KEYS = new Set(['__proto__', 'constructor', 'prototype'])

/** Paths of keys named like an object's prototype machinery, anywhere in `value`. */
function prototypeKeys(value: unknown, keys: unknown[]): string[] {
  if (typeof value !== 'object' || value === null) return []
  return Object.entries(value).flatMap(([key, item]) => [
    ...(PROTOTYPE_KEYS.has(key) && !Array.isArray(value) ? [jsonPath([...keys, key])] : []),
    ...prototypeKeys(item, [...keys, Array.isArray(value) ? Number(key) : key]),
  ])
}

/** Replaces `${NAME}` in every string value (keys stay as written). */
function substitute(
  value: unknown,
  keys: unknown[],
  env: Env,
  missing: (path: string, name: string) => void
): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = env[name]
      if (found === undefined) {
        missing(jsonPath(keys), name)
        return ''
      }
      return found
    })
  }
  if (Array.isArray(value))
    return value.map((item, i) => substitute(item, [...keys, i], env, missing))
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [
        key,
        substitute(item, [...keys, key], env, missing),
      ])
    )
  }
  return value
}
