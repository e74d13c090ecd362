// Guest activity for the lab: deterministic, recognisable disk content for fixtures, and a background writer
// that dirties a running VM's disk at a chosen rate, so deltas and CBT have something real to carry.
import { endianness } from 'node:os'
import { LifeboatError } from '../../util/errors.ts'
import type { DiskStore } from './disk-store.ts'
import { LAB_BLOCK_SIZE } from './layer.ts'

const SECTOR = 512
/** Pattern unit: each one is either all zero or filled, so fixtures have holes to skip. */
const PATTERN_CHUNK = 64 * 1024
const WRITE_SIZE = 64 * 1024
const TICK_MS = 200
/** A guest leaves its disk's first MiB alone (boot sector, partition table, boot loader): lab/guest.ts boots from it. */
const BOOT_AREA = 1024 * 1024
const LITTLE_ENDIAN = endianness() === 'LE'

/** 32-bit integer hash (lowbias32): spreads seeds and positions so patterns never line up by accident. */
function mix(value: number): number {
  let x = value >>> 0
  x ^= x >>> 16
  x = Math.imul(x, 0x7feb352d)
  x ^= x >>> 15
  x = Math.imul(x, 0x846ca68b)
  x ^= x >>> 16
  return x >>> 0
}

/** A seeded pseudo-random sequence (xorshift32). */
export function randomSequence(seed: number): () => number {
  let state = mix(seed) || 1
  return () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>>= 0)
  }
}

/** Is the 64 KiB pattern chunk at `index` a hole for `seed`? One in eight is. */
const isHole = (seed: number, index: number): boolean => mix(seed ^ mix(index)) % 8 === 0

/**
 * The content fillPattern writes at `offset`, as a pure function so tests and fixtures can check a disk: every
 * 512-byte sector starts with "LIFEBOAT seed=… sector=…" (readable in a hex dump) then pseudo-random bytes;
 * one 64 KiB chunk in eight is zeros.
 */
export function patternBytes(seed: number, offset: number, length: number): Buffer {
  const out = Buffer.alloc(length)
  const sector = Buffer.alloc(SECTOR)
  const seedMix = mix(seed)
  for (let index = Math.floor(offset / SECTOR); index * SECTOR < offset + length; index++) {
    const start = index * SECTOR
    if (isHole(seed, Math.floor(start / PATTERN_CHUNK))) continue
    const whole = start >= offset && start + SECTOR <= offset + length
    const content = whole ? out.subarray(start - offset, start - offset + SECTOR) : sector
    const labelLength = content.write(`LIFEBOAT seed=${seed} sector=${index}\n`, 'latin1')
    // randomSequence(mix(seed) ^ mix(index)) inlined, written through a word view where the sector is aligned:
    // the lab fills GiBs with this, and it shares the cores with the engine it feeds.
    let state = mix(seedMix ^ mix(index)) || 1
    const first = Math.ceil(labelLength / 4) * 4
    const words = LITTLE_ENDIAN && content.byteOffset % 4 === 0 ? new Uint32Array(content.buffer, content.byteOffset, SECTOR / 4) : undefined
    for (let i = first; i < SECTOR; i += 4) {
      state ^= state << 13
      state ^= state >>> 17
      state ^= state << 5
      state >>>= 0
      if (words !== undefined) words[i >> 2] = state
      else content.writeUInt32LE(state, i)
    }
    if (whole) continue
    content.fill(0, labelLength, first)
    const from = Math.max(start, offset)
    const to = Math.min(start + SECTOR, offset + length)
    content.copy(out, from - offset, from - start, to - start)
  }
  return out
}

/**
 * Writes patternBytes(seed, offset, length) into the disk. Holes are left unallocated where the disk has no data
 * yet, so a fixture is as sparse as a real one.
 */
export async function fillPattern(store: DiskStore, leaf: string, options: { offset: number; length: number; seed: number }): Promise<void> {
  const end = options.offset + options.length
  for (let position = options.offset; position < end;) {
    const next = Math.min(end, (Math.floor(position / PATTERN_CHUNK) + 1) * PATTERN_CHUNK)
    const data = patternBytes(options.seed, position, next - position)
    if (!isHole(options.seed, Math.floor(position / PATTERN_CHUNK)) || store.isAllocated(leaf, Math.floor(position / LAB_BLOCK_SIZE))) {
      await store.write(leaf, position, data)
    }
    position = next
  }
}

export interface WorkloadOptions {
  /** 2 MiB blocks dirtied per minute (each by one write of up to 64 KiB) */
  dirtyBlocksPerMin: number
  /** 0..1: the share of writes that land in a hot eighth of the disk (real guests rewrite the same places) */
  locality: number
  seed: number
  /** called with the error that stopped the workload (disk destroyed, SR full); without it, stop() rethrows it */
  onError?: (error: unknown) => void
}

export interface GuestWrite { offset: number; length: number; dataSeed: number }

/** The workload's writes in order: a pure function of the seed, so a run can be replayed and checked. */
export function planGuestWrites(options: { locality: number; seed: number }): (diskSize: number) => GuestWrite {
  const next = randomSequence(options.seed)
  return diskSize => {
    const blocks = Math.ceil(diskSize / LAB_BLOCK_SIZE)
    const hot = Math.max(1, Math.ceil(blocks / 8))
    const block = next() / 2 ** 32 < options.locality ? next() % hot : next() % blocks
    const whole = Math.min(LAB_BLOCK_SIZE, diskSize - block * LAB_BLOCK_SIZE)
    const skip = block === 0 && whole > BOOT_AREA ? BOOT_AREA : 0
    const room = whole - skip
    const length = Math.min(WRITE_SIZE, room)
    const offset = block * LAB_BLOCK_SIZE + skip + Math.floor((next() % Math.max(1, room - length + 1)) / SECTOR) * SECTOR
    return { offset, length, dataSeed: next() }
  }
}

/**
 * Starts writing into the disk that `leaf` is the leaf of, following it across snapshots (a disk's size is read
 * at each write, so a resize is followed too). Returns stop(), which waits for the write in flight and tells how
 * many writes were made.
 */
export function startWorkload(store: DiskStore, leaf: string, options: WorkloadOptions): () => Promise<{ writes: number }> {
  if (!(options.dirtyBlocksPerMin >= 0) || !(options.locality >= 0 && options.locality <= 1)) {
    throw new LifeboatError('LAB_BAD_WORKLOAD', 'A workload needs dirtyBlocksPerMin ≥ 0 and a locality between 0 and 1.')
  }
  const plan = planGuestWrites(options)
  let owed = 0
  let writes = 0
  let last = performance.now()
  let running: Promise<void> = Promise.resolve()
  let failure: unknown
  let stopped = false

  let current = leaf // kept, not recomputed from `leaf`: a coalesce may remove the layers between them
  const writeOnce = async (): Promise<void> => {
    current = store.currentLeaf(current)
    const { offset, length, dataSeed } = plan(store.layer(current).size)
    await store.write(current, offset, patternBytes(dataSeed, offset, length))
    writes++
  }

  const tick = (): void => {
    const now = performance.now()
    owed += ((now - last) / 60_000) * options.dirtyBlocksPerMin
    last = now
    running = running.then(async () => {
      while (owed >= 1 && !stopped && failure === undefined) {
        owed--
        await writeOnce()
      }
    }).catch(error => {
      failure = error
      clearInterval(timer)
      options.onError?.(error)
    })
  }
  const timer = setInterval(tick, TICK_MS)

  return async () => {
    stopped = true
    clearInterval(timer)
    await running
    if (failure !== undefined && options.onError === undefined) throw failure
    return { writes }
  }
}
