// Storage throughput per backend, against this machine's own pace.
// Run: node --import tsx test/bench/storage.ts [--mib 256]
// Prints, for a local folder, s3rver and azurite (both started here, on loopback, and stopped at the end):
// the MiB/s of writing a file of --mib MiB through the remote's handler (a stream, as a backup writes) and
// of reading it back whole, each with its ratio to a plain copy of the same bytes on this machine's disk
// (copyFile between two files of the same temporary folder). s3rver and azurite keep their data on that
// same disk, so the ratio shows what the protocol, the SDK and the server cost.
import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { startAzurite } from '../helpers/azurite.ts'
import { startS3rver } from '../helpers/s3rver.ts'
import { tempDir } from '../helpers/tools.ts'

const MiB = 1024 * 1024
const CHUNK = MiB

const { values } = parseArgs({ options: { mib: { type: 'string', default: '256' } } })
const mib = Number(values.mib)
if (!Number.isInteger(mib) || mib < 1) throw new Error('--mib must be a whole number of MiB, 1 or more')
const bytes = mib * MiB
// Random bytes, so that no layer can compress or deduplicate them; one chunk repeated keeps memory flat.
const chunk = randomBytes(CHUNK)

async function* data(): AsyncGenerator<Buffer> {
  for (let left = bytes; left > 0; left -= CHUNK) yield left >= CHUNK ? chunk : chunk.subarray(0, left)
}

async function seconds(body: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  await body()
  return (performance.now() - started) / 1000
}

/** The plain copy: the same bytes from one file to another of the same folder, in the page cache as the remotes get them. */
async function copyRate(scratch: string): Promise<number> {
  const source = join(scratch, 'source')
  await writeFile(source, data())
  const taken = await seconds(() => copyFile(source, join(scratch, 'copy')))
  await rm(join(scratch, 'copy'))
  await rm(source)
  return mib / taken
}

async function measure(handler: RemoteHandler): Promise<{ write: number; read: number }> {
  await handler.sync()
  const path = 'bench/probe'
  const write = await seconds(() => handler.outputStream(path, data(), { length: bytes }))
  let read = 0
  const readTime = await seconds(async () => {
    for await (const piece of await handler.createReadStream(path)) read += (piece as Buffer).length
  })
  if (read !== bytes) throw new Error(`read back ${read} bytes of ${bytes}`)
  await handler.unlink(path)
  return { write: mib / write, read: mib / readTime }
}

const scratch = await tempDir('lifeboat-bench-storage-')
const s3 = await startS3rver()
const azurite = await startAzurite()
try {
  const copy = await copyRate(scratch.path)
  console.log(`plain copy of ${mib} MiB on this disk: ${copy.toFixed(0)} MiB/s`)
  console.log(`${'backend'.padEnd(14)} ${'write MiB/s'.padStart(12)} ${'× copy'.padStart(7)} ${'read MiB/s'.padStart(12)} ${'× copy'.padStart(7)}`)
  const backends: Array<[string, string]> = [
    ['local folder', `file://${join(scratch.path, 'local')}`],
    ['s3rver', s3.urlFor('bench')],
    ['azurite', azurite.urlFor('bench')],
  ]
  await mkdir(join(scratch.path, 'local'))
  for (const [name, url] of backends) {
    const handler = openRemote(url)
    try {
      const { write, read } = await measure(handler)
      console.log(`${name.padEnd(14)} ${write.toFixed(1).padStart(12)} ${(write / copy).toFixed(2).padStart(7)} ${read.toFixed(1).padStart(12)} ${(read / copy).toFixed(2).padStart(7)}`)
    } finally {
      await handler.close()
    }
  }
} finally {
  await Promise.all([s3.stop(), azurite.stop()])
  await scratch.cleanup()
}
