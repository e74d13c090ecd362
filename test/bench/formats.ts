// VHD throughput and memory: write, parse, chain raw read and merge of a disk with half its blocks allocated,
// each compared with a plain copy of the same bytes. Run: node --import tsx test/bench/formats.ts [--size-gib 1]
import { spawnSync } from 'node:child_process'
import { createReadStream, createWriteStream } from 'node:fs'
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { fileURLToPath } from 'node:url'
import { VHD_BLOCK_SIZE, VhdChain, createVhdStream, mergeVhdChain, openVhdStream } from '../../source/formats/vhd/index.ts'

const MiB = 1024 * 1024
const CHAIN_LENGTH = 5
const RUNS = 3

const { values } = parseArgs({ options: { 'size-gib': { type: 'string', default: '1' }, op: { type: 'string' }, dir: { type: 'string' } } })
const size = Math.round(Number(values['size-gib']) * 1024) * MiB
const blockCount = size / VHD_BLOCK_SIZE

function uuid(n: number): string {
  return `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`
}

/** Writes generation `generation` of the disk: the blocks `pick` selects, as a dynamic or differencing VHD. */
async function writeLayer(path: string, generation: number, pick: (index: number) => boolean, parentName?: string): Promise<void> {
  const blockIndexes = Array.from({ length: blockCount }, (_, i) => i).filter(pick)
  async function* blocks() {
    for (const index of blockIndexes) yield { index, data: Buffer.allocUnsafe(VHD_BLOCK_SIZE).fill((index + generation) & 0xff) }
  }
  const parent = parentName === undefined ? undefined : { uuid: uuid(generation - 1), unicodeName: parentName }
  await pipeline(createVhdStream({ size, uuid: uuid(generation), blockIndexes, blocks: blocks(), parent }).stream, createWriteStream(path))
}

const layerName = (k: number) => `layer${k}.vhd`

/** One measured operation, run in its own process so that its peak RSS is its own. Returns the bytes it moved. */
async function runOp(op: string, dir: string): Promise<{ bytes: number; copyOf: string; note?: string }> {
  switch (op) {
    case 'write': {
      await writeLayer(join(dir, 'full.vhd'), 1, i => i % 2 === 0)
      return { bytes: (await stat(join(dir, 'full.vhd'))).size, copyOf: join(dir, 'full.vhd') }
    }
    case 'parse': {
      const reader = await openVhdStream(createReadStream(join(dir, 'full.vhd'), { highWaterMark: MiB }))
      for await (const block of reader.blocks()) void block
      return { bytes: (await stat(join(dir, 'full.vhd'))).size, copyOf: join(dir, 'full.vhd') }
    }
    case 'raw': {
      const chain = await VhdChain.open(join(dir, layerName(CHAIN_LENGTH - 1)))
      await pipeline(chain.rawStream(), createWriteStream(join(dir, 'disk.raw')))
      await chain.close()
      return { bytes: size, copyOf: join(dir, 'disk.raw') }
    }
    case 'merge': {
      const delta = join(dir, 'merge-delta.vhd')
      const deltaBytes = (await stat(delta)).size
      let blocksStarted = 0
      let blocksEnded = 0
      await mergeVhdChain([join(dir, 'merge-base.vhd'), delta], {
        onProgress: () => {
          blocksEnded = performance.now()
          if (blocksStarted === 0) blocksStarted = blocksEnded
        },
      })
      // The rest is opening, the footer, and deleting/renaming files (the kernel frees the replaced file's pages).
      return { bytes: deltaBytes, copyOf: join(dir, 'merge-copy-source.vhd'), note: `block phase ${(blocksEnded - blocksStarted).toFixed(0)} ms (${(deltaBytes / MiB / ((blocksEnded - blocksStarted) / 1000)).toFixed(0)} MiB/s)` }
    }
    case 'idle':
      return { bytes: 0, copyOf: '' }
    case 'copy': {
      const source = join(dir, process.env.BENCH_COPY_SOURCE ?? '')
      await pipeline(createReadStream(source, { highWaterMark: MiB }), createWriteStream(join(dir, 'copy.out')))
      await rm(join(dir, 'copy.out'))
      return { bytes: (await stat(source)).size, copyOf: source }
    }
    default:
      throw new Error(`unknown op ${op}`)
  }
}

async function child(op: string, dir: string): Promise<void> {
  const started = performance.now()
  const result = await runOp(op, dir)
  const seconds = (performance.now() - started) / 1000
  process.stdout.write(JSON.stringify({ ...result, seconds, maxRssKiB: process.resourceUsage().maxRSS }) + '\n')
}

type Measure = { bytes: number; seconds: number; maxRssKiB: number; copyOf: string; note?: string }

/** The fastest of a few runs (this machine's disk is noisy); the peak RSS is the largest seen. */
function best(runOnce: () => Measure): Measure {
  const runs = Array.from({ length: RUNS }, runOnce)
  const fastest = runs.reduce((a, b) => (b.seconds < a.seconds ? b : a))
  return { ...fastest, maxRssKiB: Math.max(...runs.map(r => r.maxRssKiB)) }
}

function measure(op: string, dir: string, env: Record<string, string> = {}): Measure {
  // Flush the dirty pages of the previous step first, so that neither side pays for the other's writeback.
  spawnSync('sync')
  const script = fileURLToPath(import.meta.url)
  const result = spawnSync(process.execPath, ['--import', 'tsx', script, '--op', op, '--dir', dir, '--size-gib', values['size-gib']!], {
    env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 1 << 20,
  })
  if (result.status !== 0) throw new Error(`${op} failed: ${result.stderr}`)
  return JSON.parse(result.stdout.trim().split('\n').pop()!)
}

async function orchestrate(): Promise<void> {
  const dir = await mkdtemp(join(values.dir ?? tmpdir(), 'lifeboat-bench-'))
  try {
    console.log(`VHD benchmark: ${size / MiB} MiB disk, ${blockCount / 2} of ${blockCount} blocks allocated, in ${dir}`)
    // Chain of 5 for the raw read: the full, then 4 deltas of 5% of the blocks each.
    const rows: Array<[string, Measure]> = []
    rows.push(['VHD write (stream → file)', best(() => measure('write', dir))])
    rows.push(['VHD parse (file → stream parser)', best(() => measure('parse', dir))])
    await copyFile(join(dir, 'full.vhd'), join(dir, layerName(0)))
    for (let k = 1; k < CHAIN_LENGTH; k++) await writeLayer(join(dir, layerName(k)), k + 1, i => (i * 7 + k) % 20 === 0, layerName(k - 1))
    rows.push([`chain raw read (chain of ${CHAIN_LENGTH} → raw file)`, best(() => measure('raw', dir))])
    await writeLayer(join(dir, 'merge-copy-source.vhd'), 2, i => i % 4 === 1, 'merge-base.vhd')
    const mergeRuns: Measure[] = []
    for (let run = 0; run < RUNS; run++) {
      await copyFile(join(dir, 'full.vhd'), join(dir, 'merge-base.vhd'))
      await copyFile(join(dir, 'merge-copy-source.vhd'), join(dir, 'merge-delta.vhd'))
      mergeRuns.push(measure('merge', dir))
    }
    rows.push(['merge of a 25% delta (delta bytes)', best(() => mergeRuns.shift()!)])
    console.log(`best of ${RUNS} runs each; a process that loads the code and does nothing peaks at ${(measure('idle', dir).maxRssKiB / 1024).toFixed(0)} MiB RSS`)
    console.log(`${'operation'.padEnd(44)} ${'MiB/s'.padStart(8)} ${'copy MiB/s'.padStart(11)} ${'ratio'.padStart(6)} ${'peak RSS'.padStart(10)}`)
    for (const [name, row] of rows) {
      const copy = best(() => measure('copy', dir, { BENCH_COPY_SOURCE: row.copyOf.slice(dir.length + 1) }))
      const rate = row.bytes / MiB / row.seconds
      const copyRate = copy.bytes / MiB / copy.seconds
      console.log(`${name.padEnd(44)} ${rate.toFixed(0).padStart(8)} ${copyRate.toFixed(0).padStart(11)} ${(rate / copyRate).toFixed(2).padStart(6)} ${`${(row.maxRssKiB / 1024).toFixed(0)} MiB`.padStart(10)}${row.note === undefined ? '' : `  ${row.note}`}`)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (values.op !== undefined) await child(values.op, values.dir!)
else await orchestrate()
