// `lifeboat vhd info|check|raw` on good and broken files: exit codes, JSON shape, raw bytes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { tempDir } from '../helpers/tools.ts'
import { patternBlock, rawOfLayers, writeVhd, type BlockMap } from './fixtures/vhd/disks.ts'

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
