// Bounded concurrency for many small independent reads (a clean's JSONs and VHD headers): on a local folder
// they overlap in libuv's thread pool, on an object store or a share their round trips overlap.

/**
 * `fn` over every item with at most `limit` running at once; the results in the items' order. The first
 * failure is thrown once the calls already started have settled (none is left running behind the caller).
 */
export async function mapConcurrently<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  let failure: { error: unknown } | undefined
  const worker = async () => {
    while (failure === undefined && next < items.length) {
      const index = next++
      try {
        results[index] = await fn(items[index]!, index)
      } catch (error) {
        failure ??= { error }
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker))
  if (failure !== undefined) throw failure.error
  return results
}
