import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createWriteStream } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'node:test'
import { XVA_CHUNK_SIZE, createXvaStream, parseOvaXml, readXva, renderOvaXml } from '../../source/formats/xva/index.ts'
import type { OvaXml, XvaDisk } from '../../source/formats/xva/index.ts'
import { xxh64Hex } from '../../source/formats/xxhash.ts'
import { isLifeboatError } from '../../source/util/errors.ts'
import { requireTool, run, tempDir } from '../helpers/tools.ts'

const MiB = XVA_CHUNK_SIZE

function ovaFor(disks: Array<{ ref: string; size: number }>): OvaXml {
  return {
    version: { hostname: 'lab-host-1', date: '2026-11-22', product_version: '8.3.0', product_brand: 'XCP-ng', build_number: 'release/8.3', xapi_major: 24, xapi_minor: 19, export_vsn: 2 },
    objects: [
      { class: 'VM', id: 'Ref:0', snapshot: { uuid: '6b1b2c3d-0000-4000-8000-000000000001', name_label: 'web <1> & co', power_state: 'Halted', memory_static_max: 1073741824, is_a_template: false, VBDs: disks.map((_, i) => `Ref:v${i}`) } },
      ...disks.map(disk => ({ class: 'VDI', id: disk.ref, snapshot: { uuid: randomUuid(), virtual_size: String(disk.size), SR: 'OpaqueRef:NULL', snapshot_time: new Date('2026-11-22T10:00:00Z') } })),
    ],
  }
}

function randomUuid(): string {
  return crypto.randomUUID()
}

/** A disk with random data in the given chunks (a few KiB each, the rest zero). */
function makeDisk(size: number, dataChunks: number[]): Buffer {
  const disk = Buffer.alloc(size)
  for (const index of dataChunks) {
    const start = index * MiB + Math.min((index * 7919) % (MiB / 2), size - index * MiB - 1)
    randomBytes(Math.min(8192, size - start)).copy(disk, start)
  }
  return disk
}

async function* everyChunk(disk: Buffer): AsyncGenerator<{ index: number; data: Buffer }> {
  for (let index = 0; index * MiB < disk.length; index++) yield { index, data: disk.subarray(index * MiB, (index + 1) * MiB) }
}

async function* onlyChunks(disk: Buffer, indexes: number[]): AsyncGenerator<{ index: number; data: Buffer }> {
  for (const index of indexes) yield { index, data: disk.subarray(index * MiB, (index + 1) * MiB) }
}

/** The entry names XAPI would write for a disk: non-zero chunks plus the first and the last. */
function expectedNames(ref: string, disk: Buffer): string[] {
  const count = Math.ceil(disk.length / MiB)
  const names: string[] = []
  for (let index = 0; index < count; index++) {
    const chunk = disk.subarray(index * MiB, (index + 1) * MiB)
    if (index === 0 || index === count - 1 || chunk.some(byte => byte !== 0)) {
      const name = `${ref}/${String(index).padStart(8, '0')}`
      names.push(name, `${name}.xxhash`)
    }
  }
  return names
}

/** Reads an XVA back into whole disks (sized from ova.xml), plus every chunk's placement. */
async function readBack(source: AsyncIterable<Buffer> | Iterable<Buffer>, options?: { verifyChecksums?: boolean }) {
  let ova: OvaXml | undefined
  const disks = new Map<string, Buffer>()
  const placements: Array<{ ref: string; offset: number; length: number }> = []
  for await (const entry of readXva(source, options)) {
    if (entry.type === 'ova.xml') {
      ova = entry.ova
      for (const object of ova.objects) if (object.class === 'VDI') disks.set(object.id, Buffer.alloc(Number(object.snapshot.virtual_size)))
      continue
    }
    placements.push({ ref: entry.ref, offset: entry.offset, length: entry.data.length })
    entry.data.copy(disks.get(entry.ref)!, entry.offset)
  }
  return { ova, disks, placements }
}

async function writeXva(path: string, ova: OvaXml, disks: XvaDisk[], compression?: 'gzip' | 'zstd'): Promise<void> {
  await pipeline(createXvaStream({ ovaXml: renderOvaXml(ova), disks, ...(compression === undefined ? {} : { compression }) }), createWriteStream(path))
}

async function tarList(archive: Buffer): Promise<string[]> {
  return (await run('tar', ['-t'], { input: archive })).stdout.toString().split('\n').filter(line => line !== '')
}

const diskA = { ref: 'Ref:9', size: 5 * MiB + 4321 } // data in chunks 1, 3 and the short last one
const diskB = { ref: 'Ref:10', size: 3 * MiB } // data in chunk 1 only, fed sparsely
const diskC = { ref: 'Ref:11', size: 1000 } // a single short, all-zero chunk

function sampleDisks() {
  const a = makeDisk(diskA.size, [1, 3, 5])
  const b = makeDisk(diskB.size, [1])
  const c = Buffer.alloc(diskC.size)
  const disks: XvaDisk[] = [
    { ...diskA, chunks: everyChunk(a) },
    { ...diskB, chunks: onlyChunks(b, [1]) },
    { ...diskC, chunks: onlyChunks(c, []) },
  ]
  return { contents: new Map([[diskA.ref, a], [diskB.ref, b], [diskC.ref, c]]), disks, ova: ovaFor([diskA, diskB, diskC]) }
}

test('an XVA we write lists with tar in XAPI order, extracts to the disk bytes, and reads back equal', async () => {
  requireTool('tar', 'tar')
  const dir = await tempDir()
  try {
    const { contents, disks, ova } = sampleDisks()
    const path = join(dir.path, 'vm.xva')
    await writeXva(path, ova, disks)
    const archive = await readFile(path)
    assert.equal(archive.length % 512, 0)
    assert.ok(archive.subarray(-1024).every(byte => byte === 0), 'the archive ends with two zero blocks of 512 bytes')
    // Disks sorted by directory name: "Ref:10" < "Ref:11" < "Ref:9".
    const names = ['ova.xml', ...expectedNames('Ref:10', contents.get('Ref:10')!), ...expectedNames('Ref:11', contents.get('Ref:11')!), ...expectedNames('Ref:9', contents.get('Ref:9')!)]
    assert.deepEqual(await tarList(archive), names)
    assert.deepEqual(names.slice(1, 7), ['Ref:10/00000000', 'Ref:10/00000000.xxhash', 'Ref:10/00000001', 'Ref:10/00000001.xxhash', 'Ref:10/00000002', 'Ref:10/00000002.xxhash'])
    assert.ok(!names.includes('Ref:9/00000002') && !names.includes('Ref:9/00000004'), 'the archive holds no chunk for the blocks 2 and 4 of Ref:9')

    const extracted = join(dir.path, 'x')
    await mkdir(extracted)
    await run('tar', ['-x', '-f', path, '-C', extracted])
    assert.deepEqual(parseOvaXml(await readFile(join(extracted, 'ova.xml'), 'utf8')), parseOvaXml(renderOvaXml(ova)))
    const chunk = await readFile(join(extracted, 'Ref:9', '00000005'))
    assert.equal(chunk.length, 4321)
    assert.ok(chunk.equals(contents.get('Ref:9')!.subarray(5 * MiB)), 'the chunk equals the disk bytes from 5 MiB on')
    assert.equal(await readFile(join(extracted, 'Ref:9', '00000003.xxhash'), 'latin1'), await xxh64Hex(contents.get('Ref:9')!.subarray(3 * MiB, 4 * MiB)))

    const back = await readBack(createReadStream(path))
    assert.deepEqual(back.ova, parseOvaXml(renderOvaXml(ova)))
    for (const [ref, content] of contents) assert.ok(back.disks.get(ref)!.equals(content), ref)
    assert.deepEqual(
      back.placements.filter(p => p.ref === 'Ref:9').map(p => p.offset),
      [0, 1, 3, 5].map(index => index * MiB),
    )
  } finally {
    await dir.cleanup()
  }
})

for (const compression of ['gzip', 'zstd'] as const) {
  test(`a ${compression} XVA decompresses with the real ${compression} program, lists with tar and reads back equal`, async () => {
    requireTool('tar', 'tar')
    requireTool(compression, compression)
    const dir = await tempDir()
    try {
      const { contents, disks, ova } = sampleDisks()
      const path = join(dir.path, `vm.xva.${compression}`)
      await writeXva(path, ova, disks, compression)
      const packed = await readFile(path)
      const plain = (await run(compression, ['-d', '-c'], { input: packed })).stdout
      assert.ok(plain.length > packed.length * 10, 'the packed archive is over 10 times smaller than the plain one')
      assert.equal((await tarList(plain))[0], 'ova.xml')
      assert.equal((await tarList(plain)).length, 1 + 2 * (3 + 1 + 4))
      const back = await readBack(createReadStream(path))
      for (const [ref, content] of contents) assert.ok(back.disks.get(ref)!.equals(content), ref)
    } finally {
      await dir.cleanup()
    }
  })
}

/** Builds an XVA with the real tar program from files the test writes itself (an independent writer). */
async function tarBuiltXva(
  dir: string,
  ova: OvaXml,
  files: Array<{ name: string; data: Buffer; checksum?: 'xxhash' | 'checksum' | 'none' }>,
  format: string,
  order: 'sorted-directories' | 'as-given',
): Promise<Buffer> {
  const root = join(dir, `src-${format}`)
  await mkdir(root, { recursive: true })
  await writeFile(join(root, 'ova.xml'), renderOvaXml(ova))
  const listed = ['ova.xml']
  for (const file of files) {
    await mkdir(join(root, file.name, '..'), { recursive: true })
    await writeFile(join(root, file.name), file.data)
    listed.push(file.name)
    if (file.checksum === 'xxhash') {
      await writeFile(join(root, `${file.name}.xxhash`), await xxh64Hex(file.data))
      listed.push(`${file.name}.xxhash`)
    } else if (file.checksum === 'checksum') {
      const { stdout } = await run('sha1sum', [join(root, file.name)])
      await writeFile(join(root, `${file.name}.checksum`), stdout.toString().split(' ')[0]!)
      listed.push(`${file.name}.checksum`)
    }
  }
  const members = order === 'as-given' ? listed : ['ova.xml', ...new Set(files.map(file => file.name.split('/')[0]!))]
  const out = join(dir, `built-${format}.xva`)
  await run('tar', [`--format=${format}`, '--sort=name', '-c', '-f', out, '-C', root, ...(order === 'as-given' ? ['--no-recursion'] : []), ...members])
  return readFile(out)
}

test('an XVA built by the real tar program reads back by XAPI\'s offset rule (gaps, legacy SHA-1, keep-alive, short first chunk)', async () => {
  requireTool('tar', 'tar')
  requireTool('sha1sum', 'coreutils')
  const dir = await tempDir()
  try {
    const c0 = randomBytes(MiB)
    const c3 = randomBytes(MiB)
    const c5 = randomBytes(4096)
    const d0 = randomBytes(MiB / 2)
    const d2 = randomBytes(MiB / 2)
    const ova = ovaFor([{ ref: 'Ref:1', size: 4 * MiB + 4096 }, { ref: 'Ref:2', size: MiB + MiB / 2 }])
    const files = [
      { name: 'Ref:1/00000000', data: c0, checksum: 'xxhash' as const },
      { name: 'Ref:1/00000003', data: c3, checksum: 'checksum' as const },
      { name: 'Ref:1/00000004', data: Buffer.alloc(0), checksum: 'xxhash' as const }, // keep-alive
      { name: 'Ref:1/00000005', data: c5, checksum: 'xxhash' as const },
      { name: 'Ref:2/00000000', data: d0, checksum: 'checksum' as const },
      { name: 'Ref:2/00000002', data: d2, checksum: 'xxhash' as const },
    ]
    for (const format of ['gnu', 'ustar', 'posix']) {
      const archive = await tarBuiltXva(dir.path, ova, files, format, 'sorted-directories')
      const back = await readBack([archive])
      assert.deepEqual(
        back.placements,
        [
          { ref: 'Ref:1', offset: 0, length: MiB },
          { ref: 'Ref:1', offset: 3 * MiB, length: MiB }, // a gap of 2 × the first chunk's length
          { ref: 'Ref:1', offset: 4 * MiB, length: 4096 }, // after the 0-byte keep-alive: cumulative, not 5 MiB
          { ref: 'Ref:2', offset: 0, length: MiB / 2 },
          { ref: 'Ref:2', offset: MiB, length: MiB / 2 }, // the gap counts in this disk's first-chunk length
        ],
        format,
      )
      assert.ok(back.disks.get('Ref:1')!.subarray(3 * MiB, 4 * MiB).equals(c3), 'disk Ref:1 reads back the chunk c3 at 3 MiB')
      assert.ok(back.disks.get('Ref:1')!.subarray(MiB, 3 * MiB).every(byte => byte === 0), 'disk Ref:1 reads zeros where no chunk was written')
      assert.ok(back.disks.get('Ref:2')!.subarray(MiB).equals(d2), 'disk Ref:2 reads back d2 from 1 MiB on')
    }
  } finally {
    await dir.cleanup()
  }
})

async function expectCode(source: AsyncIterable<Buffer> | Iterable<Buffer>, code: string, options?: { verifyChecksums?: boolean }): Promise<void> {
  await assert.rejects(readBack(source, options), (error: unknown) => {
    assert.ok(isLifeboatError(error), `not a LifeboatError: ${String(error)}`)
    assert.equal(error.code, code, error.message)
    return true
  })
}

async function smallXva(compression?: 'gzip' | 'zstd'): Promise<Buffer> {
  const disk = makeDisk(2 * MiB + 100, [0, 2])
  const stream = createXvaStream({ ovaXml: renderOvaXml(ovaFor([{ ref: 'Ref:1', size: disk.length }])), disks: [{ ref: 'Ref:1', size: disk.length, chunks: everyChunk(disk) }], ...(compression === undefined ? {} : { compression }) })
  return Buffer.concat(await stream.toArray())
}

test('checksum mismatch, truncation, bad headers and foreign archives end in coded errors', async () => {
  const archive = await smallXva()
  const chunkHeader = archive.indexOf('Ref:1/00000000\0')
  assert.ok(chunkHeader > 0, 'the archive holds the header of the first chunk of Ref:1')

  const flipped = Buffer.from(archive)
  flipped[chunkHeader + 512 + 1000]! ^= 1
  await expectCode([flipped], 'XVA_BAD_CHECKSUM')
  const lax = await readBack([flipped], { verifyChecksums: false })
  assert.equal(lax.placements.length, 2) // chunk 1 is all zero, so left out

  const badHeader = Buffer.from(archive)
  badHeader[chunkHeader + 3]! ^= 1 // the name changes, the header checksum no longer matches
  await expectCode([badHeader], 'XVA_BAD_TAR')
  await expectCode([randomBytes(4096)], 'XVA_BAD_TAR')

  for (const cut of [100, chunkHeader + 300, chunkHeader + 512 + 5000, archive.length - 1024, archive.length - 700]) {
    await expectCode([archive.subarray(0, cut)], 'XVA_TRUNCATED')
  }
  await expectCode([Buffer.alloc(0)], 'XVA_TRUNCATED')

  const gzipped = await smallXva('gzip')
  await expectCode([gzipped.subarray(0, gzipped.length - 40)], 'COMPRESSION_CORRUPT')
  const zstded = await smallXva('zstd')
  await expectCode([zstded.subarray(0, zstded.length - 40)], 'COMPRESSION_CORRUPT')
})

test('archives that break XVA rules end in coded errors (missing checksum, order, ova.xml, range)', async () => {
  requireTool('tar', 'tar')
  const dir = await tempDir()
  try {
    const ova = ovaFor([{ ref: 'Ref:1', size: 3 * MiB }])
    const chunk = (name: string, checksum: 'xxhash' | 'none' = 'xxhash') => ({ name: `Ref:1/${name}`, data: randomBytes(1024), checksum })
    const cases: Array<[string, Array<{ name: string; data: Buffer; checksum: 'xxhash' | 'none' }>, string]> = [
      ['missing', [chunk('00000000'), chunk('00000001', 'none'), chunk('00000002')], 'XVA_MISSING_CHECKSUM'],
      ['order', [chunk('00000000'), chunk('00000002'), chunk('00000001')], 'XVA_BAD_CHUNK_ORDER'],
      ['repeat', [chunk('00000000'), chunk('0')], 'XVA_BAD_CHUNK_ORDER'],
      ['range', [chunk('00000000'), chunk('00009999')], 'XVA_CHUNK_OUT_OF_RANGE'],
      ['stray', [chunk('00000000'), { name: 'Ref:1/notes.txt', data: Buffer.from('hi'), checksum: 'none' }], 'XVA_UNEXPECTED_ENTRY'],
    ]
    for (const [label, files, code] of cases) {
      await expectCode([await tarBuiltXva(join(dir.path, label), ova, files, 'gnu', 'as-given')], code)
    }

    const split = join(dir.path, 'split')
    await mkdir(split)
    const twoDisks = ovaFor([{ ref: 'Ref:1', size: 3 * MiB }, { ref: 'Ref:2', size: 3 * MiB }])
    const interleaved = [chunk('00000000'), { name: 'Ref:2/00000000', data: randomBytes(10), checksum: 'xxhash' as const }, chunk('00000001')]
    await expectCode([await tarBuiltXva(split, twoDisks, interleaved, 'gnu', 'as-given')], 'XVA_BAD_CHUNK_ORDER')

    const noOva = join(dir.path, 'no-ova')
    await mkdir(join(noOva, 'Ref:1'), { recursive: true })
    await writeFile(join(noOva, 'Ref:1', '00000000'), 'x')
    await run('tar', ['-c', '-f', join(noOva, 'a.tar'), '-C', noOva, 'Ref:1/00000000'])
    await expectCode([await readFile(join(noOva, 'a.tar'))], 'XVA_NO_OVA_XML')

    await writeFile(join(noOva, 'ova.xml'), '<value><struct><member><name>version</name><value>1</value></member></struct></value>')
    await run('tar', ['-c', '-f', join(noOva, 'b.tar'), '-C', noOva, 'ova.xml'])
    await expectCode([await readFile(join(noOva, 'b.tar'))], 'XVA_BAD_OVA_XML')
    await writeFile(join(noOva, 'ova.xml'), '<value><struct>')
    await run('tar', ['-c', '-f', join(noOva, 'c.tar'), '-C', noOva, 'ova.xml'])
    await expectCode([await readFile(join(noOva, 'c.tar'))], 'XVA_BAD_OVA_XML')
  } finally {
    await dir.cleanup()
  }
})

test('the writer refuses chunks a disk cannot hold, with a coded error on the stream', async () => {
  const ovaXml = renderOvaXml(ovaFor([{ ref: 'Ref:1', size: 2 * MiB }]))
  const write = (chunks: Array<{ index: number; data: Buffer }>) =>
    createXvaStream({ ovaXml, disks: [{ ref: 'Ref:1', size: 2 * MiB, chunks: Readable.from(chunks) }] }).toArray()
  for (const chunks of [[{ index: 1, data: Buffer.alloc(1) }, { index: 0, data: Buffer.alloc(1) }], [{ index: 2, data: Buffer.alloc(1) }], [{ index: 0, data: Buffer.alloc(MiB + 1) }]]) {
    await assert.rejects(write(chunks), (error: unknown) => isLifeboatError(error, 'XVA_BAD_DISK_CHUNK'))
  }
  assert.throws(() => createXvaStream({ ovaXml, disks: [{ ref: 'a/b', size: 1, chunks: Readable.from([]) }] }), (error: unknown) => isLifeboatError(error, 'XVA_BAD_DISK_CHUNK'))
  // A short chunk is zero-filled to its full length, so the next chunk's offset stays right.
  const archive = Buffer.concat(await createXvaStream({ ovaXml, disks: [{ ref: 'Ref:1', size: 2 * MiB, chunks: Readable.from([{ index: 0, data: Buffer.from('boot') }, { index: 1, data: Buffer.from('tail') }]) }] }).toArray())
  const back = await readBack([archive])
  assert.deepEqual(back.placements, [{ ref: 'Ref:1', offset: 0, length: MiB }, { ref: 'Ref:1', offset: MiB, length: MiB }])
  assert.equal(back.disks.get('Ref:1')!.toString('latin1', MiB, MiB + 4), 'tail')
})

test('ova.xml renders as XAPI writes it and parses back', () => {
  const ova = ovaFor([{ ref: 'Ref:3', size: 10 * MiB }])
  const xml = renderOvaXml(ova)
  assert.match(xml, /^<value><struct><member><name>version<\/name>/)
  assert.match(xml, /<name>xapi_major<\/name><value>24<\/value>/)
  assert.match(xml, /<name>is_a_template<\/name><value><boolean>0<\/boolean><\/value>/)
  assert.match(xml, /<dateTime.iso8601>20261122T10:00:00Z<\/dateTime.iso8601>/)
  assert.match(xml, /web &lt;1&gt; &amp; co/)
  const parsed = parseOvaXml(xml)
  assert.equal(parsed.version.xapi_major, '24') // XAPI ints are plain strings on the wire
  assert.equal(parsed.objects[1]!.id, 'Ref:3')
  assert.equal(parsed.objects[0]!.snapshot.name_label, 'web <1> & co')
})

test('memory stays flat: a 96 MiB disk streams through writer and reader holding a chunk or two', async () => {
  const size = 96 * MiB
  let index = 0
  const pattern = Buffer.alloc(MiB)
  async function* generated(): AsyncGenerator<{ index: number; data: Buffer }> {
    for (; index * MiB < size; index++) {
      pattern.writeUInt32LE(index, (index * 4096) % MiB) // every chunk differs, none is all-zero
      yield { index, data: Buffer.from(pattern) }
    }
  }
  const stream = createXvaStream({ ovaXml: renderOvaXml(ovaFor([{ ref: 'Ref:1', size }])), disks: [{ ref: 'Ref:1', size, chunks: generated() }], compression: 'gzip' })
  const baseline = process.memoryUsage().arrayBuffers
  let peak = 0
  let bytes = 0
  for await (const entry of readXva(stream)) {
    if (entry.type === 'chunk') {
      bytes += entry.data.length
      assert.equal(entry.data.readUInt32LE(((entry.offset / MiB) * 4096) % MiB), entry.offset / MiB)
    }
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - baseline)
  }
  assert.equal(bytes, size)
  console.log(`peak external memory ${(peak / MiB).toFixed(1)} MiB`)
  assert.ok(peak < 40 * MiB, `peak external memory ${Math.round(peak / MiB)} MiB`)
})

test('abandoning a read part-way releases the source and the zstd process', async () => {
  requireTool('zstd', 'zstd')
  const packed = await smallXva('zstd')
  const source = Readable.from([packed])
  for await (const entry of readXva(source)) {
    if (entry.type === 'chunk') break
  }
  assert.ok(source.destroyed, 'stopping the read after the first chunk destroys the source')
  await sleep(100)
  assert.deepEqual(await childProcesses('zstd'), [])
})

async function childProcesses(command: string): Promise<number[]> {
  const children: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const match = /^\d+ \((.*)\) \S+ (\d+)/.exec(await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => ''))
    if (match !== null && match[1] === command && Number(match[2]) === process.pid) children.push(Number(entry))
  }
  return children
}
