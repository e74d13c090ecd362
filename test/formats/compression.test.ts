import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { compressStream, decompressStream, detectCompression } from '../../source/formats/compression.ts'
import type { Compression } from '../../source/formats/compression.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { requireTool, run } from '../helpers/tools.ts'

const PROGRAMS: Record<Compression, { command: string; pkg: string; compress: string[]; decompress: string[] }> = {
  gzip: { command: 'gzip', pkg: 'gzip', compress: ['-c'], decompress: ['-d', '-c'] },
  zstd: { command: 'zstd', pkg: 'zstd', compress: ['-c', '-q'], decompress: ['-d', '-c', '-q'] },
}

/** Compressible but not trivial: random runs separated by zeros, like a disk. */
function sampleData(size: number): Buffer {
  const data = Buffer.alloc(size)
  for (let offset = 0; offset < size; offset += 64 * 1024) randomBytes(Math.min(8 * 1024, size - offset)).copy(data, offset)
  return data
}

async function collect(stream: Readable): Promise<Buffer> {
  return Buffer.concat(await stream.toArray())
}

for (const kind of ['gzip', 'zstd'] as const) {
  const program = PROGRAMS[kind]

  test(`${kind}: what we compress, the ${program.command} program decompresses, and the reverse`, async () => {
    requireTool(program.command, program.pkg)
    const data = sampleData(3 * 1024 * 1024 + 17)
    const ours = await collect(compressStream(Readable.from([data.subarray(0, 1000), data.subarray(1000)]), kind))
    assert.equal(detectCompression(ours), kind)
    assert.ok(ours.length < data.length / 2, 'our compressed output is less than half the size of the input')
    assert.ok((await run(program.command, program.decompress, { input: ours })).stdout.equals(data), 'the reference program decompresses our output back to the input')
    const theirs = (await run(program.command, program.compress, { input: data })).stdout
    assert.ok((await collect(decompressStream(Readable.from([theirs]), kind))).equals(data), 'decompressStream turns the reference program output back into the input')
  })

  test(`${kind}: corrupt or cut data ends in COMPRESSION_CORRUPT, never a short success`, async () => {
    requireTool(program.command, program.pkg)
    const packed = (await run(program.command, program.compress, { input: sampleData(512 * 1024) })).stdout
    const cut = packed.subarray(0, Math.floor(packed.length / 2))
    await assert.rejects(collect(decompressStream(Readable.from([cut]), kind)), (error: unknown) => isLifeboatError(error, 'COMPRESSION_CORRUPT'))
    const garbled = Buffer.from(packed)
    for (let i = 20; i < garbled.length; i += 97) garbled[i]! ^= 0x5a
    await assert.rejects(collect(decompressStream(Readable.from([garbled]), kind)), (error: unknown) => isLifeboatError(error, 'COMPRESSION_CORRUPT'))
  })

  test(`${kind}: a source error reaches the reader unchanged`, async () => {
    requireTool(program.command, program.pkg)
    async function* failing() {
      yield randomBytes(1000)
      throw new Error('network gone')
    }
    await assert.rejects(collect(compressStream(Readable.from(failing()), kind)), /network gone/)
  })

  test(`${kind}: back-pressure: a reader that stops reading stops the source, and abandoning the stream stops it for good`, async () => {
    requireTool(program.command, program.pkg)
    let produced = 0
    const source = new Readable({
      read() {
        produced += 64 * 1024
        this.push(randomBytes(64 * 1024)) // incompressible: output grows as fast as input
      },
    })
    const output = compressStream(source, kind)
    output.once('data', () => output.pause())
    await sleep(500)
    const plateau = produced
    await sleep(300)
    assert.equal(produced, plateau, 'the source kept being read while nobody consumed the output')
    assert.ok(plateau < 32 * 1024 * 1024, `${plateau} bytes were pulled with no consumer`)
    output.destroy()
    await sleep(200)
    assert.ok(source.destroyed, 'destroying the output destroys the source')
    if (kind === 'zstd') assert.deepEqual(await childZstdProcesses(), [])
  })
}

test('zstd: a missing program is a coded error that says how to install it', async () => {
  const emptyPath = await mkdtemp(join(tmpdir(), 'lifeboat-nopath-'))
  const saved = process.env.PATH
  process.env.PATH = emptyPath
  try {
    await assert.rejects(collect(compressStream(Readable.from([Buffer.from('x')]), 'zstd')), (error: unknown) => {
      assert.ok(isLifeboatError(error, 'ZSTD_MISSING'), 'a missing zstd ends in a ZSTD_MISSING error')
      assert.match(error.message, /apt-get install -y zstd/)
      return true
    })
  } finally {
    process.env.PATH = saved
  }
})

test('detectCompression knows gzip, zstd and neither', () => {
  assert.equal(detectCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip')
  assert.equal(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd')
  assert.equal(detectCompression(Buffer.from('ova.xml')), undefined)
  assert.equal(detectCompression(Buffer.from([0x28, 0xb5])), undefined)
})

/** zstd processes whose parent is this test process. */
async function childZstdProcesses(): Promise<number[]> {
  const children: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '')
    const match = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat)
    if (match !== null && match[1] === 'zstd' && Number(match[2]) === process.pid) children.push(Number(entry))
  }
  return children
}
