// `lifeboat vhd …` on what is not a VHD file: a missing path, a folder, a FIFO parent, garbage; one coded line each.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomUUID } from 'node:crypto'
import { tempDir } from '../helpers/tools.ts'
import { LIFEBOAT } from '../daemon/helpers.ts'
import { patternBlock, writeVhd } from '../formats/fixtures/vhd/disks.ts'
import { VhdFile } from '../../source/formats/vhd/index.ts'
import { isLifeboatError } from '../../source/util/errors.ts'

function lifeboat(args: string[]): { code: number | null; stdout: string; stderr: string } {
  // A hang (the FIFO) must fail the test, not block it: the bound is generous, it is not a timing assertion.
  const result = spawnSync(process.execPath, [LIFEBOAT, ...args], { encoding: 'utf8', timeout: 60_000 })
  return { code: result.status, stdout: result.stdout, stderr: result.stderr }
}

function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, stderr)
  assert.match(lines[0]!, pattern)
  assert.doesNotMatch(stderr, /\b(E[A-Z]+): \1:/, 'the errno is not printed twice')
}

test('a missing file, a folder and a file that is not a VHD: one coded line, and a JSON document with --json', async () => {
  const dir = await tempDir()
  try {
    const missing = join(dir.path, 'nope.vhd')
    for (const command of ['info', 'check', 'raw']) {
      const result = lifeboat(['vhd', command, missing])
      assert.equal(result.code, 1, `${command}: ${result.stderr}`)
      assertOneLine(result.stderr, /^lifeboat: FILE_NOT_FOUND: .*nope\.vhd/)
      const folder = lifeboat(['vhd', command, dir.path])
      assert.equal(folder.code, 1)
      assertOneLine(folder.stderr, /^lifeboat: NOT_A_REGULAR_FILE: .* is a directory/)
    }
    const garbage = join(dir.path, 'garbage.vhd')
    await writeFile(garbage, Buffer.alloc(4096, 7))
    for (const command of ['info', 'check']) {
      const result = lifeboat(['vhd', command, garbage, '--json'])
      assert.equal(result.code, 1)
      const document = JSON.parse(result.stdout) as { ok: boolean; error: { code: string; message: string } }
      assert.equal(document.ok, false)
      assert.match(document.error.code, /^VHD_/)
      assertOneLine(result.stderr, new RegExp(`^lifeboat: ${document.error.code}: `))
    }
    const json = lifeboat(['vhd', 'info', missing, '--json'])
    assert.equal(JSON.parse(json.stdout).error.code, 'FILE_NOT_FOUND')
  } finally {
    await dir.cleanup()
  }
})

test('a VHD whose parent is a FIFO is refused at once, by the CLI and by the parser', async () => {
  const dir = await tempDir()
  try {
    const parentUuid = randomUUID()
    const child = join(dir.path, 'child.vhd')
    await writeVhd(child, { size: 4 * 1024 * 1024, uuid: randomUUID(), blocks: new Map([[0, patternBlock(0, 1)]]), parent: { uuid: parentUuid, unicodeName: 'parent.vhd' } })
    assert.equal(spawnSync('mkfifo', [join(dir.path, 'parent.vhd')]).status, 0)
    for (const command of ['check', 'raw']) {
      const result = lifeboat(['vhd', command, child])
      assert.equal(result.code, 1, `${command}: ${result.stderr}`)
      assertOneLine(result.stderr, /^lifeboat: NOT_A_REGULAR_FILE: .*parent\.vhd is a FIFO/)
    }
    await assert.rejects(VhdFile.open(join(dir.path, 'parent.vhd')), error => isLifeboatError(error, 'NOT_A_REGULAR_FILE'))
    await mkdir(join(dir.path, 'folder.vhd'))
    await assert.rejects(VhdFile.open(join(dir.path, 'folder.vhd')), error => isLifeboatError(error, 'NOT_A_REGULAR_FILE'))
  } finally {
    await dir.cleanup()
  }
})
