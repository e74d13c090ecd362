// The lab's throughput model: per-stream and host-wide caps, fair sharing, limits changed at run time, and
// the guest workload that dirties a running VM's disk. Rates are printed; only loose sanity is asserted.
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { after, before, describe, it, mock } from 'node:test'
import { DiskStore, RateLimiter, planGuestWrites, startWorkload } from '../../source/lab/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'

const MiB = 1024 * 1024
const CHUNK = 64 * 1024

/** A source as fast as memory: `mebibytes` MiB in 64 KiB chunks, all the same buffer (the limiter must not copy). */
function source(mebibytes: number, chunk = Buffer.alloc(CHUNK, 1)): Readable {
  let left = (mebibytes * MiB) / CHUNK
  return new Readable({ read() { this.push(left-- > 0 ? chunk : null) } })
}

async function drain(stream: Readable, onChunk: (chunk: Buffer) => void = () => undefined): Promise<number> {
  let bytes = 0
  for await (const chunk of stream) {
    onChunk(chunk as Buffer)
    bytes += (chunk as Buffer).length
  }
  return bytes
}

/** MiB/s of `streams` parallel streams of `mebibytes` each. */
async function measure(limiter: RateLimiter, streams: number, mebibytes: number): Promise<number> {
  const start = performance.now()
  const bytes = await Promise.all(Array.from({ length: streams }, () => drain(limiter.throttle(source(mebibytes)))))
  const seconds = (performance.now() - start) / 1000
  return bytes.reduce((a, b) => a + b, 0) / MiB / seconds
}

describe('RateLimiter', () => {
  it('caps each stream and shares the host cap among parallel streams', async () => {
    const limiter = new RateLimiter({ perStreamMiBs: 40, hostMiBs: 100 })
    for (const streams of [1, 2, 4]) {
      const rate = await measure(limiter, streams, 6)
      const cap = Math.min(100, 40 * streams)
      console.log(`${streams} stream(s): ${rate.toFixed(1)} MiB/s (model: ${cap} MiB/s)`)
      assert.ok(rate <= cap * 1.3, `${streams} streams are not faster than the cap`)
      assert.ok(rate >= cap / 4, `${streams} streams are not stalled`)
    }
    assert.equal(limiter.activeStreams, 0)
  })

  it('gives the share of a stream whose reader stalls to the streams still moving', async () => {
    const limiter = new RateLimiter({ hostMiBs: 60 })
    const stalled = limiter.throttle(source(64))
    stalled.once('data', () => stalled.pause()) // reads one chunk, then its reader stops
    const rate = await measure(limiter, 1, 36) // the first 200 ms still count the stalled stream
    console.log(`one stream beside a stalled one: ${rate.toFixed(1)} MiB/s (host cap 60)`)
    assert.equal(limiter.activeStreams, 1, 'the stalled stream is still open')
    assert.ok(rate > 40 && rate <= 60 * 1.3, 'the moving stream gets about the whole host cap, not half')
    stalled.destroy()
  })

  it('is uncapped by default, passes chunks without copying, and counts active streams', async () => {
    const limiter = new RateLimiter()
    const chunk = Buffer.alloc(CHUNK, 7)
    const paced = limiter.throttle(source(64, chunk))
    assert.equal(limiter.activeStreams, 1)
    let same = true
    // Pacing is a timer per chunk: none is set when there is no limit (a rate measured here would depend on the machine's load).
    const timers = mock.method(globalThis, 'setTimeout')
    try {
      await drain(paced, seen => (same &&= seen === chunk))
    } finally {
      timers.mock.restore()
    }
    assert.ok(same, 'the chunks that come out are the chunks that went in')
    assert.equal(timers.mock.callCount(), 0, 'no pacing when no limit is set')
    assert.equal(limiter.activeStreams, 0)
  })

  it('applies new limits to a running stream and propagates errors and destruction', async () => {
    const limiter = new RateLimiter()
    const paced = limiter.throttle(source(16))
    let bytes = 0
    let limitedAt = 0
    for await (const chunk of paced) {
      bytes += (chunk as Buffer).length
      if (bytes >= 8 * MiB && limitedAt === 0) {
        limiter.setLimits({ perStreamMiBs: 40 })
        limitedAt = performance.now()
      }
    }
    const seconds = (performance.now() - limitedAt) / 1000
    console.log(`after setLimits(40 MiB/s): ${(8 / seconds).toFixed(1)} MiB/s`)
    // The 8 MiB left take at least their time at 40 MiB/s less the bucket's 50 ms of burst (a loaded machine only adds to it).
    assert.ok(seconds >= ((8 - 40 * 0.05) / 40) * 0.95, `paced at the new limit (${seconds.toFixed(3)} s for 8 MiB)`)

    const failing = new Readable({ read() { this.destroy(new Error('disk gone')) } })
    await assert.rejects(drain(limiter.throttle(failing)), /disk gone/)
    const upstream = source(100)
    const consumer = limiter.throttle(upstream)
    consumer.destroy()
    await new Promise(resolve => setImmediate(resolve))
    assert.ok(upstream.destroyed, 'destroying the paced stream destroys its source')
    assert.equal(limiter.activeStreams, 0)
  })
})

describe('workload', () => {
  let folder: { path: string; cleanup: () => Promise<void> }
  before(async () => (folder = await tempDir('lifeboat-lab-workload-')))
  after(async () => folder.cleanup())

  it('dirties blocks at about the rate asked and follows the disk across snapshots', async () => {
    const store = await DiskStore.open(`${folder.path}/store`)
    await store.addSr({ uuid: 'sr', physicalSize: 1024 * MiB, thick: false })
    const disk = await store.createLayer({ sr: 'sr', size: 64 * MiB })
    const stop = startWorkload(store, disk, { dirtyBlocksPerMin: 6000, locality: 0.5, seed: 9 })
    await new Promise(resolve => setTimeout(resolve, 500))
    const { leaf, copy } = await store.snapshot(disk)
    await new Promise(resolve => setTimeout(resolve, 500))
    const { writes } = await stop()
    const before = store.allocatedBlocks(copy).length
    const since = store.layer(leaf).ownAllocatedBlocks
    console.log(`${writes} writes in 1 s (100/s asked): ${before} blocks dirty before the snapshot, ${since} after it`)
    assert.ok(writes >= 20 && writes <= 150, 'about the rate asked')
    assert.ok(before > 0 && since > 0, 'the workload keeps writing into the new leaf after a snapshot')
    await store.close()
  })

  it('plans the same writes for the same seed, with the hot share asked', () => {
    const size = 64 * MiB + 512
    const take = (seed: number, locality: number) => {
      const plan = planGuestWrites({ seed, locality })
      return Array.from({ length: 400 }, () => plan(size))
    }
    assert.deepEqual(take(5, 0.7), take(5, 0.7))
    assert.notDeepEqual(take(5, 0.7), take(6, 0.7))
    for (const write of take(5, 0.7)) assert.ok(write.offset >= 0 && write.offset + write.length <= size && write.length > 0, 'every write falls inside the disk and is not empty')
    const hotEnd = Math.ceil(Math.ceil(size / (2 * MiB)) / 8) * 2 * MiB // the first eighth of the blocks, rounded up
    const hot = (locality: number) => take(8, locality).filter(write => write.offset < hotEnd).length / 400
    assert.ok(hot(0.9) > 0.8 && hot(0) < 0.3, `hot share ${hot(0.9)} with locality 0.9, ${hot(0)} with 0`)
  })
})
