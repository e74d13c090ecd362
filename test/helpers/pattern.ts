// A deterministic stream of random bytes for round-trip tests: the chunks to write and the sha256 to compare.
import { createHash, randomBytes } from 'node:crypto'

/** `total` bytes in chunks of `chunkSize` (uneven sizes cross the backends' block boundaries), and their sha256. */
export function pattern(total: number, chunkSize = 65536): { chunks: () => AsyncGenerator<Buffer>; sha256: string } {
  const block = randomBytes(chunkSize)
  const hash = createHash('sha256')
  for (let done = 0; done < total; done += block.length) hash.update(block.subarray(0, Math.min(block.length, total - done)))
  return {
    sha256: hash.digest('hex'),
    async *chunks() {
      for (let done = 0; done < total; done += block.length) yield Buffer.from(block.subarray(0, Math.min(block.length, total - done)))
    },
  }
}
