// Storage throughput per backend, against this machine's own pace.
// Run: node --import tsx test/bench/storage.ts [--mib 256]   (as root: it starts smbd and nfs-ganesha)
// Prints, for a local folder, s3rver, azurite, Samba (SMB) and nfs-ganesha (NFS), all started here on loopback
// and stopped at the end: the MiB/s of writing a file of --mib MiB through the remote's handler (a stream, as a
// backup writes) and of reading it back whole, each with its ratio to a plain copy of the same bytes on this
// machine's disk (copyFile between two files of the same temporary folder) and to the local folder's rate; then
// the MiB/s of a VhdDirectory merge (XO's way, through aliases: a delta of a quarter of the blocks into a full of
// --mib MiB) against a plain copy of the delta's bytes; then, on each remote with files (local, SMB, NFS), a VHD
// file merge (in place, as XO merges on NFS) against a plain copy over the same connection (the delta read
// whole and written to a new file through the same handler). The servers keep their data on that same disk, so
// the ratios show what the protocol, the client and the server cost.
import { randomBytes, randomUUID } from 'node:crypto'
import { copyFile, mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createVhdStream, mergeVhdChain, VHD_BLOCK_SIZE, writeVhdAlias, writeVhdDirectory, type FileSystemAccess } from '../../source/formats/vhd/index.ts'
import { fileSystemAccess, openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { startAzurite } from '../helpers/azurite.ts'
import { startGanesha } from '../helpers/ganesha.ts'
import { startSamba } from '../helpers/samba.ts'
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

async function* data(length = bytes): AsyncGenerator<Buffer> {
  for (let left = length; left > 0; left -= CHUNK) yield left >= CHUNK ? chunk : chunk.subarray(0, left)
}

async function seconds(body: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  await body()
  return (performance.now() - started) / 1000
}

/** The plain copy: the same bytes from one file to another of the same folder, in the page cache as the remotes get them. */
async function copyRate(scratch: string, length = bytes): Promise<number> {
  const source = join(scratch, 'source')
  await writeFile(source, data(length))
  const taken = await seconds(() => copyFile(source, join(scratch, 'copy')))
  await rm(join(scratch, 'copy'))
  await rm(source)
  return length / MiB / taken
}

const allBlocks = () => Array.from({ length: Math.ceil(bytes / VHD_BLOCK_SIZE) }, (_, i) => i)
// A quarter of the blocks, spread over the disk as a day of guest writes would be.
const deltaBlocks = () => allBlocks().filter(i => i % 4 === 1)

async function* blocksOf(indexes: number[]): AsyncGenerator<{ index: number; data: Buffer }> {
  const block = Buffer.concat([chunk, chunk]).subarray(0, VHD_BLOCK_SIZE)
  for (const index of indexes) yield { index, data: block }
}

/** A full VhdDirectory of every block and a delta of a quarter of them, each behind its alias; the delta's stored bytes. */
async function writeChain(fs: FileSystemAccess, dir: string): Promise<{ chain: string[]; deltaBytes: number }> {
  const write = async (name: string, uuid: string, indexes: number[], parent?: { uuid: string; unicodeName: string }) => {
    // No compression: random blocks do not shrink, and the merge then moves exactly the bytes the copy does.
    const written = await writeVhdDirectory(`${dir}/data/${name}.vhd`, { fs, size: bytes, uuid, blockIndexes: indexes, blocks: blocksOf(indexes), compression: 'none', ...(parent !== undefined && { parent }) })
    await writeVhdAlias(fs, `${dir}/${name}.alias.vhd`, `${dir}/data/${name}.vhd`)
    return written.storedBytes
  }
  const base = randomUUID()
  await write('base', base, allBlocks())
  const deltaBytes = await write('delta', randomUUID(), deltaBlocks(), { uuid: base, unicodeName: 'base.vhd' })
  return { chain: [`${dir}/base.alias.vhd`, `${dir}/delta.alias.vhd`], deltaBytes }
}

/** The VHD file merge (in place) against a copy of the delta file through the same handler, both in MiB/s of the delta. */
async function fileMergeRate(handler: RemoteHandler): Promise<{ merge: number; copy: number; deltaMiB: number }> {
  const dir = 'bench/file-merge'
  const write = async (name: string, uuid: string, indexes: number[], parent?: { uuid: string; unicodeName: string }) => {
    const { length, stream } = createVhdStream({ size: bytes, uuid, blockIndexes: indexes, blocks: blocksOf(indexes), ...(parent !== undefined && { parent }) })
    await handler.outputStream(`${dir}/${name}.vhd`, stream, { length })
    return length
  }
  const base = randomUUID()
  await write('base', base, allBlocks())
  const deltaBytes = await write('delta', randomUUID(), deltaBlocks(), { uuid: base, unicodeName: 'base.vhd' })
  const copyTime = await seconds(async () => handler.outputStream(`${dir}/copy.vhd`, await handler.createReadStream(`${dir}/delta.vhd`), { length: deltaBytes }))
  const mergeTime = await seconds(() => mergeVhdChain([`${dir}/base.vhd`, `${dir}/delta.vhd`], { fs: fileSystemAccess(handler) }))
  await handler.rmtree(dir)
  const deltaMiB = deltaBytes / MiB
  return { merge: deltaMiB / mergeTime, copy: deltaMiB / copyTime, deltaMiB }
}

async function mergeRate(handler: RemoteHandler): Promise<{ merge: number; deltaMiB: number }> {
  const fs = fileSystemAccess(handler)
  const { chain, deltaBytes } = await writeChain(fs, 'bench/merge')
  const taken = await seconds(() => mergeVhdChain(chain, { fs }))
  await handler.rmtree('bench/merge')
  return { merge: deltaBytes / MiB / taken, deltaMiB: deltaBytes / MiB }
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
const samba = await startSamba()
const ganesha = await startGanesha()
const row = (cells: Array<[string | number, number]>) => cells.map(([cell, width], k) => (k === 0 ? String(cell).padEnd(width) : String(cell).padStart(width))).join(' ')
try {
  const copy = await copyRate(scratch.path)
  console.log(`plain copy of ${mib} MiB on this disk: ${copy.toFixed(0)} MiB/s`)
  console.log(row([['backend', 14], ['write MiB/s', 12], ['× copy', 7], ['× local', 8], ['read MiB/s', 12], ['× copy', 7], ['× local', 8]]))
  const backends: Array<[string, string]> = [
    ['local folder', `file://${join(scratch.path, 'local')}`],
    ['s3rver', s3.urlFor('bench')],
    ['azurite', azurite.urlFor('bench')],
    ['Samba (SMB)', samba.urlFor('bench')],
    ['ganesha (NFS)', ganesha.urlFor('bench')],
  ]
  await mkdir(join(scratch.path, 'local'))
  const merges: Array<[string, { merge: number; deltaMiB: number }]> = []
  const fileMerges: Array<[string, { merge: number; copy: number; deltaMiB: number }]> = []
  let local: { write: number; read: number } | undefined
  for (const [name, url] of backends) {
    const handler = openRemote(url)
    try {
      const rates = await measure(handler)
      local ??= rates
      const { write, read } = rates
      console.log(row([[name, 14], [write.toFixed(1), 12], [(write / copy).toFixed(2), 7], [(write / local.write).toFixed(2), 8], [read.toFixed(1), 12], [(read / copy).toFixed(2), 7], [(read / local.read).toFixed(2), 8]]))
      merges.push([name, await mergeRate(handler)])
      if (handler.capabilities.randomWrite) fileMerges.push([name, await fileMergeRate(handler)])
    } finally {
      await handler.close()
    }
  }
  const deltaMiB = merges[0]![1].deltaMiB
  const deltaCopy = await copyRate(scratch.path, Math.round(deltaMiB * MiB))
  console.log(`\nVhdDirectory merge of a ${deltaMiB.toFixed(0)} MiB delta into a ${mib} MiB full; a plain copy of the delta's bytes: ${deltaCopy.toFixed(0)} MiB/s`)
  console.log(row([['backend', 14], ['merge MiB/s', 12], ['× copy', 7]]))
  for (const [name, { merge }] of merges) console.log(row([[name, 14], [merge.toFixed(1), 12], [(merge / deltaCopy).toFixed(2), 7]]))
  console.log(`\nVHD file merge (in place) of a ${fileMerges[0]?.[1].deltaMiB.toFixed(0)} MiB delta into a ${mib} MiB full, against a copy of the delta file over the same connection (the issue asks ≥ 0.80 on NFS)`)
  console.log(row([['backend', 14], ['merge MiB/s', 12], ['copy MiB/s', 12], ['× copy', 7]]))
  for (const [name, { merge, copy: sameCopy }] of fileMerges) console.log(row([[name, 14], [merge.toFixed(1), 12], [sameCopy.toFixed(1), 12], [(merge / sameCopy).toFixed(2), 7]]))
} finally {
  await Promise.all([s3.stop(), azurite.stop(), samba.cleanup(), ganesha.cleanup()])
  await scratch.cleanup()
}
