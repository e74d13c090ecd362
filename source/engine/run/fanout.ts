// One source feeding several targets in lock-step: the next item is read from the source only when every
// live target has taken the current one, so the slowest target sets the pace and memory stays at one item.
// A target that stops (fails or gives up) is dropped and the others go on; a source error reaches all.

interface ForkState {
  /** Index of the item this fork asks for next. */
  wanted: number
  alive: boolean
}

/**
 * Splits an async iterable into `count` iterables that each see every item, in lock-step.
 * Each fork must be iterated (or returned) for the others to progress: create all the consumers at once.
 */
export function forkAsyncIterable<T>(source: AsyncIterable<T>, count: number): AsyncIterable<T>[] {
  const iterator = source[Symbol.asyncIterator]()
  const forks: ForkState[] = Array.from({ length: count }, () => ({ wanted: 0, alive: true }))
  // The item being served and its index; items are fetched one at a time.
  let current: { index: number; result: Promise<IteratorResult<T>> } | undefined
  let waiters: Array<() => void> = []
  let finished = false

  const wake = () => {
    const w = waiters
    waiters = []
    for (const resolve of w) resolve()
  }

  // Item `index` may be fetched once every live fork has asked for it (so all have consumed index-1).
  const ready = (index: number) => forks.every(f => !f.alive || f.wanted >= index)

  const closeSource = () => {
    if (finished) return
    finished = true
    void iterator.return?.()?.catch?.(() => {})
  }

  const fetch = async (index: number): Promise<IteratorResult<T>> => {
    while (current === undefined || current.index < index) {
      if (current === undefined || current.index === index - 1) {
        if (ready(index)) {
          current = { index, result: iterator.next() }
          current.result.then(r => r.done === true && (finished = true), () => (finished = true))
          wake()
          break
        }
      }
      await new Promise<void>(resolve => waiters.push(resolve))
    }
    return current!.result
  }

  return forks.map(fork => ({
    [Symbol.asyncIterator](): AsyncIterator<T> {
      return {
        next: async () => {
          if (!fork.alive) return { done: true, value: undefined }
          const index = fork.wanted
          const result = await fetch(index)
          if (result.done !== true) fork.wanted = index + 1
          wake()
          return result
        },
        return: async () => {
          if (fork.alive) {
            fork.alive = false
            if (forks.every(f => !f.alive)) closeSource()
            wake()
          }
          return { done: true, value: undefined }
        },
      }
    },
  }))
}
