/**
 * Route policy refusals counted by route and reason since start, in this instance's memory: what
 * `bff_policy_denials_total{route,reason}` will expose. `route` is a configured prefix and `reason`
 * an error code, so the number of counters is bounded by the configuration, never by requests.
 */
export interface DenialCounter {
  add(route: string, reason: string): void
  /** Every counter so far. */
  counts(): Array<{ route: string; reason: string; count: number }>
}

export function denialCounter(): DenialCounter {
  const counts = new Map<string, { route: string; reason: string; count: number }>()
  return {
    add(route, reason) {
      // A prefix has no space (config/routes.ts), so the key is unambiguous.
      const key = `${route} ${reason}`
      const entry = counts.get(key)
      if (entry) entry.count++
      else counts.set(key, { route, reason, count: 1 })
    },
    counts: () => [...counts.values()].map((entry) => ({ ...entry })),
  }
}
