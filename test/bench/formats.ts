// VHD throughput and memory: write, parse, chain raw read and merge of a disk with half its blocks allocated,
// each compared with a plain copy of the same bytes; and whether a merge's cost follows the changed blocks or
// the disk's size (a 1% delta merged into a 4 GiB disk and into a 1 GiB one).
// Run: node --import tsx test/bench/formats.ts [--size-gib 1]
import { createReadStream, createWriteStream } from 'node:fs'
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { VHD_BLOCK_SIZE, VhdChain, createVhdStream, mergeVhdChain, openVhdStream } from '../../source/formats/vhd/index.ts'
import { WRITE_WINDOW } from '../../source/storage/index.ts'
import { cpuSeconds, peakRssMiB, GiB, isMain, median, MiB, plainCopy, printFigures, runScript, syncDisks, type ChildFigures, type Figure } from './measure.ts'

const CHAIN_LENGTH = 5
const RUNS = 3
const SCRIPT = fileURLToPath(import.meta.url)

function uuid(n: number): string {
  return `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`
}

/** Writes generation `generation` of a disk of `size` bytes: the blocks `pick` selects, as a dynamic or differencing VHD. */
async function writeLayer(path: string, size: number, generation: number, pick: (index: number) => boolean, parentName?: string): Promise<void> {
  const blockIndexes = Array.from({ length: size / VHD_BLOCK_SIZE }, (_, i) => i).filter(pick)
  // A ring of blocks, not one new 2 MiB buffer a block: fresh memory costs page faults that belong to this
  // generator, not to the writer measured. The writer holds fewer blocks than the ring (its window and one in flight).
  const ring = Array.from({ length: 16 }, () => Buffer.allocUnsafe(VHD_BLOCK_SIZE))
  async function* blocks() {
    for (const [k, index] of blockIndexes.entries()) yield { index, data: ring[k % ring.length]!.fill((index + generation) & 0xff) }
  }
  const parent = parentName === undefined ? undefined : { uuid: uuid(generation - 1), unicodeName: parentName }
  await pipeline(createVhdStream({ size, uuid: uuid(generation), blockIndexes, blocks: blocks(), parent }).stream, fileAsARemoteWritesIt(path))
}

const layerName = (k: number) => `layer${k}.vhd`
/** A file written as a local remote writes one (its window of bytes ahead of the disk), without its fsync and rename. */
const fileAsARemoteWritesIt = (path: string) => createWriteStream(path, { highWaterMark: WRITE_WINDOW })

interface OpResult extends ChildFigures {
  bytes: number
  /** The file a plain copy of the same bytes copies. */
  copyOf: string
  note?: string
}

/** One measured operation (in its own process, so that its peak RSS and CPU are its own); the bytes it moved. */
async function runOp(op: string, dir: string, size: number): Promise<{ bytes: number; copyOf: string; note?: string }> {
  switch (op) {
    case 'write': {
      await writeLayer(join(dir, 'full.vhd'), size, 1, i => i % 2 === 0)
      return { bytes: (await stat(join(dir, 'full.vhd'))).size, copyOf: join(dir, 'full.vhd') }
    }
    case 'parse': {
      const reader = await openVhdStream(createReadStream(join(dir, 'full.vhd'), { highWaterMark: MiB }))
      for await (const block of reader.blocks()) void block
      return { bytes: (await stat(join(dir, 'full.vhd'))).size, copyOf: join(dir, 'full.vhd') }
    }
    case 'raw': {
      const chain = await VhdChain.open(join(dir, layerName(CHAIN_LENGTH - 1)))
      await pipeline(chain.rawStream(), fileAsARemoteWritesIt(join(dir, 'disk.raw')))
      await chain.close()
      return { bytes: size, copyOf: join(dir, 'disk.raw') }
    }
    case 'merge': {
      // BENCH_MERGE names the pair: <prefix>-base.vhd and <prefix>-delta.vhd (copies the orchestrator made).
      const prefix = process.env.BENCH_MERGE ?? 'merge'
      const delta = join(dir, `${prefix}-delta.vhd`)
      const deltaBytes = (await stat(delta)).size
      let blocksStarted = 0
      let blocksEnded = 0
      const started = performance.now()
      await mergeVhdChain([join(dir, `${prefix}-base.vhd`), delta], {
        onProgress: () => {
          blocksEnded = performance.now()
          if (blocksStarted === 0) blocksStarted = blocksEnded
        },
      })
      const ended = performance.now()
      // Before the first block: opening, the state file; after the last: the footer, deleting and renaming files.
      return { bytes: deltaBytes, copyOf: join(dir, `${prefix}-copy-source.vhd`), note: `open ${(blocksStarted - started).toFixed(0)} ms, blocks ${(blocksEnded - blocksStarted).toFixed(0)} ms, end ${(ended - blocksEnded).toFixed(0)} ms` }
    }
    case 'idle':
      return { bytes: 0, copyOf: '' }
    default:
      throw new Error(`unknown op ${op}`)
  }
}

async function child(op: string, dir: string, size: number): Promise<void> {
  const [started, cpu] = [performance.now(), cpuSeconds()]
  const result = await runOp(op, dir, size)
  const figures: ChildFigures = { seconds: (performance.now() - started) / 1000, cpuSeconds: cpuSeconds() - cpu, maxRssMiB: peakRssMiB() }
  process.stdout.write(`${JSON.stringify({ ...result, ...figures })}\n`)
}

async function measure(op: string, dir: string, size: number, env: Record<string, string> = {}): Promise<OpResult> {
  await syncDisks()
  return runScript<OpResult>(SCRIPT, ['--op', op, '--dir', dir, '--size', String(size)], env)
}

/** The median of a few runs by time (this machine's disk is noisy); the peak RSS is the largest seen. */
async function medianOf(runs: number, runOnce: (run: number) => Promise<OpResult>): Promise<OpResult> {
  const results: OpResult[] = []
  for (let run = 0; run < runs; run++) results.push(await runOnce(run))
  const middle = median(results.map(r => r.seconds))
  return { ...results.find(r => r.seconds === middle)!, maxRssMiB: Math.max(...results.map(r => r.maxRssMiB)) }
}

/** An operation and a plain copy of the same bytes, alternated run by run so that both see the same noise. */
async function againstCopy(runs: number, dir: string, runOnce: (run: number) => Promise<OpResult>): Promise<{ op: OpResult; copy: OpResult; ratio: number }> {
  const ops: OpResult[] = []
  const copies: OpResult[] = []
  for (let run = 0; run < runs; run++) {
    const op = await runOnce(run)
    ops.push(op)
    copies.push({ ...(await plainCopy(op.copyOf, join(dir, 'copy.out'))), copyOf: op.copyOf })
  }
  const rate = (r: OpResult) => r.bytes / r.seconds
  const ratios = ops.map((op, k) => rate(op) / rate(copies[k]!))
  const middle = median(ratios)
  const k = ratios.indexOf(middle)
  return { op: { ...ops[k]!, maxRssMiB: Math.max(...ops.map(r => r.maxRssMiB)) }, copy: copies[k]!, ratio: middle }
}

export interface FormatOptions {
  sizeGiB: number
  /** Figures to measure (ids); all when undefined. */
  only?: ReadonlySet<string>
}

export const FORMAT_FIGURES = ['vhd-write', 'chain-raw', 'merge', 'merge-scale'] as const

/** Measures the VHD figures, printing each operation's detail; returns the figures of issue #18. */
export async function formatFigures(options: FormatOptions): Promise<Figure[]> {
  const wanted = (id: string) => options.only === undefined || options.only.has(id)
  const size = Math.round(options.sizeGiB * 1024) * MiB
  const blockCount = size / VHD_BLOCK_SIZE
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-bench-'))
  const figures: Figure[] = []
  const rate = (r: OpResult) => (r.bytes / MiB / r.seconds).toFixed(0)
  const cpuPerGiB = (r: OpResult) => (r.cpuSeconds / (r.bytes / GiB)).toFixed(2)
  const show = (name: string, r: { op: OpResult; copy: OpResult; ratio: number }) =>
    console.log(`  ${name.padEnd(40)} ${rate(r.op).padStart(6)} MiB/s, copy ${rate(r.copy).padStart(5)} MiB/s, ratio ${r.ratio.toFixed(2)}; CPU ${cpuPerGiB(r.op)} s/GiB (copy ${cpuPerGiB(r.copy)}); peak RSS ${r.op.maxRssMiB.toFixed(0)} MiB${r.op.note === undefined ? '' : `; ${r.op.note}`}`)
  const push = (id: string, name: string, today: string, r: { op: OpResult; copy: OpResult; ratio: number }) =>
    figures.push({ id, name, today, goal: { atLeast: 0.9 }, value: r.ratio, baseline: `${rate(r.op)} vs ${rate(r.copy)} MiB/s` })
  try {
    console.log(`VHD benchmark: ${size / MiB} MiB disk, ${blockCount / 2} of ${blockCount} blocks allocated, in ${dir}; median of ${RUNS} runs, each against a plain copy of the same bytes run right after it`)
    console.log(`  a process that loads the code and does nothing peaks at ${(await measure('idle', dir, size)).maxRssMiB.toFixed(0)} MiB RSS`)
    // The written full is the base of the chain and of the 25% merge.
    if (wanted('vhd-write') || wanted('chain-raw') || wanted('merge')) {
      // Into a new file, as the copy writes, the old one removed before the clock starts: freeing its blocks
      // (a truncate, or an unlink; this disk is mounted with discard) is not the writer's cost.
      const write = await againstCopy(RUNS, dir, async () => {
        await rm(join(dir, 'full.vhd'), { force: true })
        return measure('write', dir, size)
      })
      show('VHD write (stream → file)', write)
      if (wanted('vhd-write')) push('vhd-write', 'VHD write (stream → file) vs a plain copy', '0.67', write)
    }
    // Not a figure of the issue: measured only when this benchmark runs alone.
    if (isMain(import.meta)) show('VHD parse (file → stream parser)', await againstCopy(RUNS, dir, () => measure('parse', dir, size)))
    if (wanted('chain-raw')) {
      // Chain of 5 for the raw read: the full, then 4 deltas of 5% of the blocks each.
      await copyFile(join(dir, 'full.vhd'), join(dir, layerName(0)))
      for (let k = 1; k < CHAIN_LENGTH; k++) await writeLayer(join(dir, layerName(k)), size, k + 1, i => (i * 7 + k) % 20 === 0, layerName(k - 1))
      const raw = await againstCopy(RUNS, dir, () => measure('raw', dir, size))
      show(`chain raw read (chain of ${CHAIN_LENGTH} → raw file)`, raw)
      push('chain-raw', `chain raw read (chain of ${CHAIN_LENGTH} → raw file) vs a plain copy`, '0.47', raw)
    }
    // A merge changes its base: each run merges fresh copies.
    const mergeRun = async (prefix: string, base: string, delta: string) => {
      await copyFile(join(dir, base), join(dir, `${prefix}-base.vhd`))
      await copyFile(join(dir, delta), join(dir, `${prefix}-delta.vhd`))
      return measure('merge', dir, size, { BENCH_MERGE: prefix })
    }
    if (wanted('merge')) {
      await writeLayer(join(dir, 'merge-copy-source.vhd'), size, 2, i => i % 4 === 1, 'merge-base.vhd')
      const merge = await againstCopy(RUNS, dir, () => mergeRun('merge', 'full.vhd', 'merge-copy-source.vhd'))
      show('merge of a 25% delta (delta bytes)', merge)
      // The merge's end renames the grown base over the delta: the file system frees the delta there, which a copy never pays.
      await copyFile(join(dir, 'merge-copy-source.vhd'), join(dir, 'unlinked.vhd'))
      await syncDisks()
      const unlinkStarted = performance.now()
      await rm(join(dir, 'unlinked.vhd'))
      console.log(`    of its end, freeing a file of the delta's size on this disk takes ${(performance.now() - unlinkStarted).toFixed(0)} ms here (a rename over the delta frees it the same way)`)
      push('merge', 'merge of a 25% delta vs a copy of the delta\'s bytes', '0.42', merge)
    }
    if (wanted('merge-scale')) {
      // Bases with a quarter of their blocks, deltas of 1% of the blocks (none of them in the base: appended).
      const perChangedMiB: Record<string, { op: OpResult; msPerMiB: number }> = {}
      for (const gib of [1, 4]) {
        const scaleSize = gib * GiB
        await writeLayer(join(dir, `scale${gib}-source-base.vhd`), scaleSize, 1, i => i % 4 === 0)
        await writeLayer(join(dir, `scale${gib}-copy-source.vhd`), scaleSize, 2, i => i % 100 === 1, `scale${gib}-base.vhd`)
        const op = await medianOf(RUNS, () => mergeRun(`scale${gib}`, `scale${gib}-source-base.vhd`, `scale${gib}-copy-source.vhd`))
        perChangedMiB[gib] = { op, msPerMiB: (op.seconds * 1000) / (op.bytes / MiB) }
        console.log(`  merge of a 1% delta into a ${gib} GiB disk: ${(op.bytes / MiB).toFixed(0)} MiB in ${(op.seconds * 1000).toFixed(0)} ms, ${perChangedMiB[gib]!.msPerMiB.toFixed(2)} ms per changed MiB (${op.note})`)
      }
      const [one, four] = [perChangedMiB[1]!, perChangedMiB[4]!]
      figures.push({
        id: 'merge-scale', name: 'merge of a 1% delta, 4 GiB vs 1 GiB disk (time per changed MiB)', today: '—', goal: { atMost: 1.2 }, value: four.msPerMiB / one.msPerMiB,
        baseline: `${four.msPerMiB.toFixed(2)} vs ${one.msPerMiB.toFixed(2)} ms/MiB`,
      })
    }
    return figures
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (isMain(import.meta)) {
  const { values } = parseArgs({ options: { 'size-gib': { type: 'string', default: '1' }, op: { type: 'string' }, dir: { type: 'string' }, size: { type: 'string' } } })
  if (values.op !== undefined) await child(values.op, values.dir!, Number(values.size))
  else printFigures(await formatFigures({ sizeGiB: Number(values['size-gib']) }))
}
