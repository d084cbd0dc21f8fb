/**
 * A small Prometheus registry: counters and histograms with labels, rendered in the text
 * exposition format 0.0.4. Web APIs only, on purpose: the core runs on Workers without
 * `nodejs_compat`, and prom-client needs Node (its registry imports `node:cluster`, its default
 * metrics `process` and `perf_hooks`), so it cannot be the core's registry. The Node entry still
 * uses prom-client for the process metrics and appends its text (adapters/node/metrics.ts).
 *
 * A series is a child made once per label values (`labels(...)`) and kept by the caller: the hot
 * path increments a number, it never builds a key or a string.
 */

/** Latency buckets from half a millisecond (a cached answer) to ten seconds (a slow upstream). */
export const DURATION_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]

/** The Content-Type of the text format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export interface CounterChild {
  inc(by?: number): void
  /** The count so far. */
  readonly value: number
}

export interface HistogramChild {
  observe(value: number): void
}

interface Metric {
  render(): string
}

/** The series of one metric by label values: each made once, its label text rendered once. */
abstract class Family<Child> implements Metric {
  private readonly children = new Map<string, { labels: string; child: Child }>()
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[]
  ) {
    if (!NAME.test(name)) throw new Error(`metric name "${name}" is not valid`)
    for (const label of labelNames) {
      if (!LABEL.test(label) || label === 'le') throw new Error(`label "${label}" is not valid`)
    }
  }

  /** The series of these label values, in `labelNames`' order; made on first use. */
  labels(...values: string[]): Child {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values`)
    }
    // NUL cannot occur in the bounded values the BFF passes, so the key is unambiguous.
    const key = values.join('\u0000')
    const known = this.children.get(key)
    if (known) return known.child
    const labels = this.labelNames.map((name, i) => `${name}="${escapeLabel(values[i]!)}"`)
    const entry = { labels: labels.join(','), child: this.create() }
    this.children.set(key, entry)
    return entry.child
  }

  /** How many series the metric has. */
  get size(): number {
    return this.children.size
  }

  protected abstract create(): Child
  protected abstract type: 'counter' | 'histogram'
  protected abstract lines(labels: string, child: Child): string[]

  render(): string {
    const out = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`]
    // A metric without labels has its one series from the start: 0 is an answer too.
    if (this.labelNames.length === 0) this.labels()
    for (const { labels, child } of this.children.values()) out.push(...this.lines(labels, child))
    return out.join('\n') + '\n'
  }
}

export class Counter extends Family<CounterChild> {
  protected type = 'counter' as const
  protected create(): CounterChild {
    return new CounterSeries()
  }
  protected lines(labels: string, child: CounterChild): string[] {
    return [`${this.name}${braces(labels)} ${child.value}`]
  }
}

class CounterSeries implements CounterChild {
  value = 0
  inc(by = 1): void {
    this.value += by
  }
}

class HistogramSeries implements HistogramChild {
  // Per bucket, not cumulative: observe adds to one slot; render sums them up. Last is +Inf.
  readonly counts: number[]
  sum = 0
  count = 0
  constructor(private readonly buckets: readonly number[]) {
    this.counts = new Array<number>(buckets.length + 1).fill(0)
  }
  observe(value: number): void {
    const { buckets } = this
    let i = 0
    while (i < buckets.length && value > buckets[i]!) i++
    this.counts[i]!++
    this.sum += value
    this.count++
  }
}

export class Histogram extends Family<HistogramChild> {
  protected type = 'histogram' as const
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly buckets: readonly number[] = DURATION_BUCKETS
  ) {
    super(name, help, labelNames)
    if (buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
      throw new Error(`${name}: buckets must be finite and increasing`)
    }
  }
  protected create(): HistogramChild {
    return new HistogramSeries(this.buckets)
  }
  protected lines(labels: string, child: HistogramChild): string[] {
    const series = child as HistogramSeries
    const sep = labels ? ',' : ''
    const out: string[] = []
    let cumulative = 0
    this.buckets.forEach((bound, i) => {
      cumulative += series.counts[i]!
      out.push(`${this.name}_bucket{${labels}${sep}le="${bound}"} ${cumulative}`)
    })
    out.push(`${this.name}_bucket{${labels}${sep}le="+Inf"} ${series.count}`)
    out.push(`${this.name}_sum${braces(labels)} ${series.sum}`)
    out.push(`${this.name}_count${braces(labels)} ${series.count}`)
    return out
  }
}

/** A value read when the metrics are rendered (e.g. connections open now), without labels. */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number
  ) {
    if (!NAME.test(name)) throw new Error(`metric name "${name}" is not valid`)
  }
  render(): string {
    const value = this.read()
    return (
      [
        `# HELP ${this.name} ${escapeHelp(this.help)}`,
        `# TYPE ${this.name} gauge`,
        `${this.name} ${Number.isFinite(value) ? value : 0}`,
      ].join('\n') + '\n'
    )
  }
}

/** The metrics of one app, rendered in the order they were made. */
export class Registry {
  private readonly metrics: Metric[] = []
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames))
  }
  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: number[]) {
    return this.add(new Histogram(name, help, labelNames, buckets))
  }
  gauge(name: string, help: string, read: () => number): Gauge {
    return this.add(new Gauge(name, help, read))
  }
  render(): string {
    return this.metrics.map((metric) => metric.render()).join('')
  }
  private add<M extends Metric>(metric: M): M {
    this.metrics.push(metric)
    return metric
  }
}

function braces(labels: string): string {
  return labels ? `{${labels}}` : ''
}

/** The format's escapes in label values: backslash, double quote and line feed. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function escapeHelp(help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}
