// A merge on a remote that is really full (a private tmpfs) never makes a restore point unreadable: it is
// refused with REMOTE_FULL naming the space it needs, a merge cut by ENOSPC in the middle leaves every chain
// readable, and the next clean with space finishes it. Every listed restore point is read back and compared.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { requireTool, run, tempDir } from '../helpers/tools.ts'

const CHILD = fileURLToPath(new URL('./full-remote-child.ts', import.meta.url))
const REPO = fileURLToPath(new URL('../..', import.meta.url))

interface Phase { points: Array<{ generation: number; same: boolean }>; vhds: string[] }

test('a merge on a full remote is refused with REMOTE_FULL, one cut by ENOSPC leaves every restore point readable, the next clean finishes it', async () => {
  requireTool('unshare', 'util-linux')
  requireTool('qemu-img', 'qemu-utils')
  const dir = await tempDir('lifeboat-merge-full-')
  try {
    const remote = join(dir.path, 'remote')
    const out = join(dir.path, 'out')
    await run('mkdir', [remote, out])
    const { stdout } = await run('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=48m tmpfs "$0" && cd "$3" && REMOTE_DIR="$0" OUT_DIR="$1" SEED=7 exec "$2" --import tsx "$4"', remote, out, process.execPath, REPO, CHILD])
    const result = JSON.parse(stdout.toString()) as { appended: number; refused: Phase & { warnings: Array<{ message: string; error?: string }> }; cut: Phase & { error: string; grewBy: number }; finished: Phase & { merged: number; warnings: unknown[] } }
    assert.ok(result.appended >= 2, `the merge appends blocks (${result.appended}), so that it can be cut in the middle`)
    const kept = [{ generation: 4, same: true }, { generation: 5, same: true }]

    const [warning] = result.refused.warnings
    assert.match(warning?.message ?? '', /merge failed/)
    assert.match(warning?.error ?? '', /^The remote file:\/\/.* is full: merging 4 old backups of .*\.vhd needs \d+(\.\d)? MiB and \d+(\.\d)? MiB are free; free space/)
    assert.deepEqual(result.refused.points, kept)
    assert.equal(result.refused.vhds.length, 6, 'nothing merged, nothing removed')

    assert.equal(result.cut.error, 'ENOSPC')
    assert.ok(result.cut.grewBy > 0, 'the merge had appended blocks before the remote filled up')
    assert.deepEqual(result.cut.points, kept)

    assert.equal(result.finished.merged, 4)
    assert.deepEqual(result.finished.warnings, [])
    assert.deepEqual(result.finished.points, kept)
    assert.equal(result.finished.vhds.length, 2)

    // qemu-img, the independent reader, opens the full VHD that a cut merge was writing into, and the merged ones.
    for (const phase of ['refused', 'cut', 'finished']) {
      const folder = join(out, phase, 'vdis')
      const [job] = await readdir(folder)
      const [vdi] = await readdir(join(folder, job!))
      const chainDir = join(folder, job!, vdi!)
      const [oldest] = (await readdir(chainDir)).filter(name => name.endsWith('.vhd')).sort()
      await run('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', join(chainDir, oldest!), join(dir.path, `${phase}.raw`)])
      await run(process.execPath, ['--import', 'tsx', join(REPO, 'cli.tsx'), 'vhd', 'check', join(chainDir, oldest!)], { cwd: REPO })
    }
  } finally {
    await dir.cleanup()
  }
})
