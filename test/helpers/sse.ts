/**
 * Reads a Server-Sent Events answer as it streams: each event (its name and data) and comment,
 * with the moment it arrived, so tests can wait for one and measure how long it took.
 */

export interface SseEvent {
  /** `message` when the event has no `event:` line; `comment` for a `:` line. */
  event: string
  data: string
  /** performance.now() when it arrived. */
  at: number
}

export interface SseReader {
  /** Everything read so far. */
  readonly events: SseEvent[]
  /** Resolves once the stream has ended (the server closed it or it was cancelled). */
  readonly ended: Promise<void>
  /** Whether the stream has ended. */
  readonly done: boolean
  /** The next event named `name` (already read or still to come), or throws after `timeoutMs`. */
  next(name: string, timeoutMs?: number): Promise<SseEvent>
  /** Stops reading and cancels the body, as a browser closing the page. */
  close(): Promise<void>
}

export function readSse(response: Response): SseReader {
  if (!response.body) throw new Error('no body to read')
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  const events: SseEvent[] = []
  const waiters = new Set<() => void>()
  let done = false
  let buffer = ''

  function parse(block: string) {
    let event = 'message'
    const data: string[] = []
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        events.push({ event: 'comment', data: line.slice(1).trim(), at: performance.now() })
      } else if (line.startsWith('event:')) event = line.slice(6).trim()
      else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
    }
    if (data.length || event !== 'message') {
      events.push({ event, data: data.join('\n'), at: performance.now() })
    }
  }

  const ended = (async () => {
    try {
      for (;;) {
        const { value, done: finished } = await reader.read()
        if (finished) break
        buffer += value
        let cut: number
        while ((cut = buffer.indexOf('\n\n')) !== -1) {
          parse(buffer.slice(0, cut))
          buffer = buffer.slice(cut + 2)
        }
        for (const wake of [...waiters]) wake()
      }
    } catch {
      // Cancelled or cut: ended either way.
    } finally {
      done = true
      for (const wake of [...waiters]) wake()
    }
  })()

  return {
    events,
    ended,
    get done() {
      return done
    },
    async next(name, timeoutMs = 5000) {
      let seen = 0
      const deadline = performance.now() + timeoutMs
      for (;;) {
        const found = events.slice(seen).find((one) => one.event === name)
        if (found) return found
        seen = events.length
        if (done) throw new Error(`the stream ended without "${name}": ${JSON.stringify(events)}`)
        const left = deadline - performance.now()
        if (left <= 0) throw new Error(`no "${name}" within ${timeoutMs} ms`)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left)
          const wake = () => {
            clearTimeout(timer)
            waiters.delete(wake)
            resolve()
          }
          waiters.add(wake)
        })
      }
    },
    async close() {
      await reader.cancel().catch(() => {})
      await ended
    },
  }
}
