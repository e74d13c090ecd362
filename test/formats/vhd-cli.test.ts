// `lifeboat vhd info|check|raw` on good and broken files, VhdDirectories and aliases: exit codes, JSON shape, raw bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/tools.ts'
import { localFileSystem, writeVhdAlias } from '../../source/formats/vhd/index.ts'
import { patternBlock, rawOfLayers, writeVhd, writeVhdDir, type BlockMap } from './fixtures/vhd/disks.ts'

const MiB = 1024 * 1024
const BIN = fileURLToPath(new URL('../../bin/lifeboat.js', import.meta.url))

function lifeboat(args: string[]): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (d: Buffer) => out.push(d))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    child.on('error', reject)
    child.on('close', code => resolve({ code, stdout: Buffer.concat(out), stderr: err }))
  })
}

test('vhd info, check and raw on a good chain and on broken files', async () => {
  const dir = await tempDir()
  try {
    const size = 12 * MiB
    const base: BlockMap = new Map([[0, patternBlock(0, 1)], [4, patternBlock(4, 1)]])
    const delta: BlockMap = new Map([[4, patternBlock(4, 2)], [5, patternBlock(5, 2)]])
    const baseUuid = randomUUID()
    const childUuid = randomUUID()
    const basePath = join(dir.path, 'base.vhd')
    const childPath = join(dir.path, 'child.vhd')
    await writeVhd(basePath, { size, uuid: baseUuid, blocks: base })
    await writeVhd(childPath, { size, uuid: childUuid, blocks: delta, parent: { uuid: baseUuid, unicodeName: 'base.vhd' } })

    const info = await lifeboat(['vhd', 'info', childPath, '--json'])
    assert.equal(info.code, 0, info.stderr)
    const summary = JSON.parse(info.stdout.toString())
    assert.equal(summary.type, 'differencing')
    assert.equal(summary.size, size)
    assert.equal(summary.uuid, childUuid)
    assert.deepEqual({ uuid: summary.parent.uuid, name: summary.parent.name }, { uuid: baseUuid, name: 'base.vhd' })
    assert.equal(summary.blockSize, 2 * MiB)
    assert.equal(summary.allocatedBlocks, 2)
    assert.equal(summary.blocks, 6)
    assert.equal(summary.creator.application, 'xo  ')
    assert.match(summary.timestamp, /^\d{4}-\d\d-\d\dT/)
    const text = await lifeboat(['vhd', 'info', basePath])
    assert.equal(text.code, 0)
    assert.match(text.stdout.toString(), /Type\s+dynamic/)

    const check = await lifeboat(['vhd', 'check', childPath, '--json'])
    assert.equal(check.code, 0, check.stderr)
    assert.deepEqual(JSON.parse(check.stdout.toString()), { ok: true, paths: [childPath, basePath] })

    const raw = await lifeboat(['vhd', 'raw', childPath])
    assert.equal(raw.code, 0, raw.stderr)
    assert.ok(raw.stdout.equals(rawOfLayers(size, [base, delta])), 'the raw output equals the base with the delta laid over it')

    // Broken: a damaged footer checksum, then a missing parent.
    const bytes = await readFile(basePath)
    bytes[100] = bytes[100]! ^ 0xff
    const damaged = join(dir.path, 'damaged.vhd')
    await writeFile(damaged, bytes)
    const badInfo = await lifeboat(['vhd', 'info', damaged, '--json'])
    assert.equal(badInfo.code, 1)
    assert.match(badInfo.stderr, /VHD_BAD_FOOTER_CHECKSUM/)
    const badCheck = await lifeboat(['vhd', 'check', damaged, '--json'])
    assert.equal(badCheck.code, 1)
    assert.equal(JSON.parse(badCheck.stdout.toString()).error.code, 'VHD_BAD_FOOTER_CHECKSUM')
    await rm(basePath)
    const orphan = await lifeboat(['vhd', 'check', childPath])
    assert.equal(orphan.code, 1)
    assert.match(orphan.stderr, /VHD_PARENT_MISSING/)
    assert.equal((await lifeboat(['vhd', 'raw', childPath])).code, 1)

    const usage = await lifeboat(['vhd', 'frobnicate', childPath])
    assert.equal(usage.code, 2)
    assert.equal((await lifeboat(['vhd', 'info'])).code, 2)
  } finally {
    await dir.cleanup()
  }
})

test('vhd info, check and raw on a chain of VhdDirectories given by its alias or its folder', async () => {
  const dir = await tempDir()
  try {
    const size = 12 * MiB
    const base: BlockMap = new Map([[0, patternBlock(0, 1)], [4, patternBlock(4, 1)]])
    const delta: BlockMap = new Map([[4, patternBlock(4, 2)], [5, patternBlock(5, 2)]])
    const baseUuid = randomUUID()
    await mkdir(join(dir.path, 'data'))
    await writeVhdDir(join(dir.path, 'data/base.vhd'), { size, uuid: baseUuid, blocks: base, compression: 'gzip' })
    await writeVhdDir(join(dir.path, 'data/child.vhd'), { size, uuid: randomUUID(), blocks: delta, parent: { uuid: baseUuid, unicodeName: 'base.alias.vhd' } })
    const baseAlias = join(dir.path, 'base.alias.vhd')
    const childAlias = join(dir.path, 'child.alias.vhd')
    await writeVhdAlias(localFileSystem, baseAlias, join(dir.path, 'data/base.vhd'))
    await writeVhdAlias(localFileSystem, childAlias, join(dir.path, 'data/child.vhd'))

    const info = await lifeboat(['vhd', 'info', childAlias, '--json'])
    assert.equal(info.code, 0, info.stderr)
    const summary = JSON.parse(info.stdout.toString())
    assert.deepEqual([summary.format, summary.compression, summary.dataPath, summary.type, summary.allocatedBlocks, summary.tableOffset], ['directory', 'brotli', join(dir.path, 'data/child.vhd'), 'differencing', 2, null])
    assert.equal(summary.parent.name, 'base.alias.vhd')
    const folder = JSON.parse((await lifeboat(['vhd', 'info', join(dir.path, 'data/base.vhd'), '--json'])).stdout.toString())
    assert.deepEqual([folder.format, folder.compression, folder.dataPath], ['directory', 'gzip', null], 'a folder named directly')
    const text = (await lifeboat(['vhd', 'info', childAlias])).stdout.toString()
    assert.match(text, /Format\s+VhdDirectory, brotli per block/)
    assert.match(text, /File\s+.*child\.alias\.vhd -> .*data\/child\.vhd/)

    const check = await lifeboat(['vhd', 'check', childAlias, '--json'])
    assert.equal(check.code, 0, check.stderr)
    assert.deepEqual(JSON.parse(check.stdout.toString()), { ok: true, paths: [childAlias, baseAlias] })
    const raw = await lifeboat(['vhd', 'raw', childAlias])
    assert.equal(raw.code, 0, raw.stderr)
    assert.ok(raw.stdout.equals(rawOfLayers(size, [base, delta])), 'the raw output equals the base with the delta laid over it')

    await rm(join(dir.path, 'data/base.vhd/footer'))
    const broken = await lifeboat(['vhd', 'check', childAlias])
    assert.equal(broken.code, 1)
    assert.match(broken.stderr, /VHD_DIRECTORY_INCOMPLETE/)
    await writeFile(baseAlias, 'child.alias.vhd')
    assert.match((await lifeboat(['vhd', 'info', baseAlias])).stderr, /VHD_ALIAS_TO_ALIAS/)
  } finally {
    await dir.cleanup()
  }
})
