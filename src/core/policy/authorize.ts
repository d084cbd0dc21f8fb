/**
 * The `authorize` route policy: an external policy decision point (PDP), asked before the upstream
 * call in the shape of OPA's REST data API. The BFF POSTs
 * `{ "input": { route, method, path, idp, sub, claims, acr, scopes } }` and lets the call through
 * only on `{ "result": true }` or `{ "result": { "allow": true } }`; any other answer is a denial
 * (403 `forbidden`), and a PDP that cannot answer (unreachable, not 2xx, not JSON, too slow)
 * refuses with 503 `policy_unavailable`: it never allows.
 *
 * Decisions are kept for the route's `cacheSeconds`, per session generation: a refresh, a new login
 * (step-up), a logout or a revocation gives another session id or generation, so a decision made
 * for the old one is never found again. The key also holds the method and the path: the PDP saw
 * them, so a decision for `GET orders/1` says nothing about `DELETE orders/1`.
 */
import type { ApiRoute } from '../config/options.ts'
import { BffError } from '../errors.ts'
import type { BffMetrics } from '../observe/bff-metrics.ts'
import { errorReason, subjectHash, type Logger } from '../observe/log.ts'
import type { Session } from '../session/types.ts'
import { mappedClaims } from './claims.ts'
import { oldestFirst } from '../oldest-first.ts'

/**
 * How long one PDP call may take, answer body included. Fixed rather than `BFF_IDP_TIMEOUT` (10 s by
 * default): the PDP is asked on the path of API calls, and a local OPA answers in milliseconds.
 */
export const PDP_TIMEOUT_MS = 2000
/** Decisions kept at most (all routes and sessions together); the least recently used go first. */
export const MAX_DECISIONS = 10_000
/** A PDP answer larger than this is not a decision: refused as unavailable, not read further. */
export const MAX_ANSWER_BYTES = 64 * 1024

/** What the PDP gets as `input`. Never a token, cookie or session id. */
export interface PolicyInput {
  /** The route's prefix, e.g. `/api/orders/`. */
  route: string
  method: string
  /** The request path below the prefix, as sent (percent-encoded), without the query: `7/lines`. */
  path: string
  /** The IdP the session came from, when the session knows it. */
  idp?: string
  sub?: string
  /** The ID token's and userinfo's claims plus each normalised (mapped) one, as `/bff/user`. */
  claims?: Record<string, unknown>
  acr?: string
  /** The scopes granted to the session, when it knows them. */
  scopes?: string[]
}

export interface PolicyPointOptions {
  /** fetch for the PDP calls (Node and workerd alike). */
  fetch: typeof fetch
  /** The BFF's clock, epoch milliseconds. */
  now: () => number
  log: Logger
  /**
   * The claims map (normalised name -> dot path) of the IdP, or of each session's IdP: the PDP
   * gets the mapped names too.
   */
  claims?:
    Readonly<Record<string, string>> | ((session: Session) => Readonly<Record<string, string>>)
  /** Where refusals are counted, with the other policies' (`bff_policy_denials_total`). */
  metrics?: Pick<BffMetrics, 'policyDenial'>
  /** @default PDP_TIMEOUT_MS */
  timeoutMs?: number
  /** @default MAX_DECISIONS */
  maxDecisions?: number
}

export interface PolicyPoint {
  /**
   * Asks the route's PDP (or its cached decision) about this call; resolves when it allows.
   * Does nothing on a route without `authorize`.
   * @throws BffError 403 `forbidden` when the PDP denies, 503 `policy_unavailable` when it cannot answer.
   */
  authorize(
    route: ApiRoute,
    method: string,
    pathname: string,
    session: Session | undefined
  ): Promise<void>
}

export function policyPoint(options: PolicyPointOptions): PolicyPoint {
  const { now, log } = options
  const timeoutMs = options.timeoutMs ?? PDP_TIMEOUT_MS
  const maxDecisions = options.maxDecisions ?? MAX_DECISIONS
  // Insertion order is recency order: a hit moves its entry to the end, the first goes when full.
  const decisions = new Map<string, { allow: boolean; until: number }>()
  const oldestDecision = oldestFirst(decisions)
  // Calls asking the same question at once share one PDP call.
  const asking = new Map<string, Promise<boolean>>()

  const cached = (key: string): boolean | undefined => {
    const entry = decisions.get(key)
    if (!entry) return undefined
    decisions.delete(key)
    if (entry.until <= now()) return undefined
    decisions.set(key, entry)
    return entry.allow
  }
  const remember = (key: string, allow: boolean, seconds: number) => {
    decisions.delete(key)
    while (decisions.size >= maxDecisions) decisions.delete(oldestDecision()![0])
    decisions.set(key, { allow, until: now() + seconds * 1000 })
  }

  // One `policy.denied` line and one count per refusal, with the fields the other policies log
  // (policy/access.ts); `cause` says why a PDP gave no decision.
  const denied = async (
    route: ApiRoute,
    reason: 'forbidden' | 'policy_unavailable',
    session: Session | undefined,
    cause?: string
  ) => {
    options.metrics?.policyDenial(route.prefix, reason)
    log('warn', 'policy.denied', {
      route: route.prefix,
      reason,
      key: 'authorize',
      idp: session?.idp,
      sub: session ? await subjectHash(session.sub) : undefined,
      cause,
    })
  }

  return {
    async authorize(route, method, pathname, session) {
      const policy = route.authorize
      if (!policy) return
      const path = pathname.slice(route.prefix.length)
      const mapping =
        typeof options.claims === 'function'
          ? session
            ? options.claims(session)
            : {}
          : (options.claims ?? {})
      const input = inputOf(route, method, path, session, mapping)
      // The session id is random and never leaves the BFF; with the generation it names one set
      // of tokens and claims. Without a session there is nothing to key a decision to.
      const key =
        policy.cacheSeconds > 0 && session
          ? [session.id, session.generation, route.prefix, method, path].join('\n')
          : undefined
      let allow = key === undefined ? undefined : cached(key)
      if (allow === undefined) {
        let pending = key === undefined ? undefined : asking.get(key)
        if (!pending) {
          pending = ask(options.fetch, policy.url, input, timeoutMs)
          if (key !== undefined) {
            asking.set(key, pending)
            // Failures are not remembered: the next call asks again.
            pending
              .then((decision) => remember(key, decision, policy.cacheSeconds))
              .catch(() => {})
              .finally(() => asking.delete(key))
          }
        }
        try {
          allow = await pending
        } catch (err) {
          const cause = err instanceof PdpAnswerError ? err.message : errorReason(err)
          await denied(route, 'policy_unavailable', session, cause)
          throw new BffError(503, 'policy_unavailable', 'The policy service is not available.', {
            cause: err,
          })
        }
      }
      if (allow) return
      await denied(route, 'forbidden', session)
      throw new BffError(403, 'forbidden', 'You are not allowed to use this.')
    },
  }
}

function inputOf(
  route: ApiRoute,
  method: string,
  path: string,
  session: Session | undefined,
  mapping: Readonly<Record<string, string>>
): PolicyInput {
  const input: PolicyInput = { route: route.prefix, method, path }
  if (!session) return input
  if (typeof session.idp === 'string') input.idp = session.idp
  input.sub = session.sub
  // As /bff/user shows them: the ID token's and userinfo's, plus each mapped (normalised) one.
  input.claims = { ...session.claims, ...mappedClaims(session.claims, mapping) }
  if (typeof session.claims.acr === 'string') input.acr = session.claims.acr
  if (typeof session.scope === 'string') input.scopes = session.scope.split(' ').filter(Boolean)
  return input
}

/** The PDP answered, but not with a decision; the message is fixed text, safe for the log. */
class PdpAnswerError extends Error {
  override name = 'PdpAnswerError'
}

/** One PDP call: true or false when it decided, a rejection when it could not. */
async function ask(
  fetchPdp: typeof fetch,
  url: URL,
  input: PolicyInput,
  timeoutMs: number
): Promise<boolean> {
  const controller = new AbortController()
  const timer = setTimeout(
    () => controller.abort(new DOMException('no decision in time', 'TimeoutError')),
    timeoutMs
  )
  try {
    const response = await fetchPdp(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ input }),
      // A redirect is not a decision (and could send the input elsewhere).
      redirect: 'manual',
      signal: controller.signal,
    })
    if (response.status < 200 || response.status > 299) {
      await response.body?.cancel().catch(() => {})
      throw new PdpAnswerError(`status ${response.status}`)
    }
    let answer: unknown
    try {
      answer = JSON.parse(await readText(response, controller.signal))
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err
      throw new PdpAnswerError('not JSON')
    }
    return allows(answer)
  } finally {
    clearTimeout(timer)
  }
}

/** Only these two shapes allow; `{}` (OPA's answer for an undefined rule) and anything else deny. */
function allows(answer: unknown): boolean {
  if (typeof answer !== 'object' || answer === null) return false
  const result = (answer as { result?: unknown }).result
  if (result === true) return true
  return (
    typeof result === 'object' && result !== null && (result as { allow?: unknown }).allow === true
  )
}

/** The body as text, at most MAX_ANSWER_BYTES. */
async function readText(response: Response, signal: AbortSignal): Promise<string> {
  if (!response.body) return ''
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let bytes = 0
  const abort = () => reader.cancel(signal.reason).catch(() => {})
  signal.addEventListener('abort', abort, { once: true })
  try {
    for (;;) {
      const { done, value } = await reader.read()
      // A cancelled read ends as if the body had: the timeout is the reason, not a short answer.
      if (signal.aborted) throw signal.reason
      if (done) return text + decoder.decode()
      bytes += value.byteLength
      if (bytes > MAX_ANSWER_BYTES) {
        await reader.cancel().catch(() => {})
        throw new PdpAnswerError(`answer over ${MAX_ANSWER_BYTES} bytes`)
      }
      text += decoder.decode(value, { stream: true })
    }
  } finally {
    signal.removeEventListener('abort', abort)
  }
}
