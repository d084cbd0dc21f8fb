/**
 * A Redis operation bounded in time. ioredis has no command timeout unless the client sets one,
 * and a Cluster client may retry a command across redirections and failovers: without a bound, a
 * Redis that hangs (a frozen process, a partition without resets) would hold every request open.
 */
export async function bounded<T>(
  operation: Promise<T>,
  ms: number,
  what = 'a command'
): Promise<T> {
  operation.catch(() => {}) // a late failure after the timeout is nobody's to handle
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer ${what} within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([operation, timeout])
  } finally {
    clearTimeout(timer)
  }
}
