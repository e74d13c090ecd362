// LVM2 metadata as lvm2 itself writes it (pvcreate, vgcreate, lvcreate, lvextend on loop devices over a disk
// image), not as our own fixture does: a linear volume in two segments on two PVs and a striped one, each an
// ext4 with known files, written into a lab VM's disk, backed up, then browsed and fetched byte for byte.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { listVmBackups } from '../../../source/repository/index.ts'
import { vmDisks } from '../../../source/xapi/index.ts'
import { FileRestoreSession, fetchToPath } from '../../../source/engine/file-restore/index.ts'
import { describeFailure, job, runToEnd, startEngineLab, vmByName } from '../helpers.ts'
import { requireTool, run, tempDir } from '../../helpers/tools.ts'
import { MiB, ext4Image, lvmByTools, partitionedDisk, requireDiskTools } from './disk-image.ts'

const LVM = 'E6D6D379-F507-44C2-A23C-238F2A3DF928'
const DISK_MiB = 72
const PVS = [{ startMiB: 1, sizeMiB: 32, type: LVM }, { startMiB: 33, sizeMiB: 32, type: LVM }]

test('LVM written by lvm2: a linear volume in two segments over two PVs and a striped one, browsed and fetched byte for byte', { timeout: 600_000 }, async () => {
  requireDiskTools()
  requireTool('pvcreate', 'lvm2')
  const scratch = await tempDir('lifeboat-lvm-tools-')
  const env = await startEngineLab()
  try {
    // A name of its own, so that no VG of the host is ever mistaken for it.
    const vg = `lbtest_${randomBytes(4).toString('hex')}`
    const sources: Record<string, string> = {}
    for (const lv of ['one', 'two']) {
      const files = join(scratch.path, `files-${lv}`, 'data')
      await mkdir(join(files, 'sub'), { recursive: true })
      await writeFile(join(files, 'name.txt'), `volume ${lv}\n`)
      // Larger than a stripe chunk and an extent: it spans the segments and both stripes.
      await writeFile(join(files, 'sub', 'big.bin'), randomBytes(9 * MiB + 333))
      await writeFile(join(files, 'small.bin'), randomBytes(70_000))
      sources[lv] = join(scratch.path, `files-${lv}`)
      await ext4Image(join(scratch.path, `${lv}.img`), 16 * MiB, sources[lv]!, { label: `lv-${lv}` })
    }
    const disk = join(scratch.path, 'disk.img')
    await partitionedDisk(disk, DISK_MiB, 'gpt', PVS)
    const report = await lvmByTools(disk, vg, PVS.map(pv => ({ offset: pv.startMiB * MiB, size: pv.sizeMiB * MiB })), { one: join(scratch.path, 'one.img'), two: join(scratch.path, 'two.img') })
    const segments = (JSON.parse(report) as { report: Array<{ seg: Array<{ lv_name: string; segtype: string }> }> }).report[0]!.seg
    assert.deepEqual(segments.map(s => [s.lv_name, s.segtype]).sort(), [['one', 'linear'], ['one', 'linear'], ['two', 'striped']], report)

    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-running')
    const vdi = vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi
    await conn.call('VDI.resize_online', vdi.$ref, String(DISK_MiB * MiB))
    const content = await readFile(disk)
    for (let at = 0; at < content.length; at += MiB) {
      const chunk = content.subarray(at, at + MiB)
      if (chunk.some(b => b !== 0)) await env.lab.control.writeVdi(vdi.uuid, { offset: at, data: chunk.toString('base64') })
    }
    const tree = await runToEnd(env, job({ id: 'lvm-job', mode: 'delta', vms: { uuids: [vm.uuid] } }))
    assert.equal(tree.status, 'success', describeFailure(tree))
    const [backup] = await listVmBackups(env.remotes.get('a')!, vm.uuid)

    const session = await FileRestoreSession.open(env.remotes.get('a')!, backup!.id, { workDir: join(scratch.path, 'work') })
    try {
      const volumes = await session.volumes(session.disks[0]!.id)
      assert.deepEqual(volumes.map(v => [v.id, v.content, v.label ?? '', v.size]), [
        ['1', 'lvm', '', 32 * MiB], [`1/${vg}/one`, 'ext', 'lv-one', 16 * MiB], [`1/${vg}/two`, 'ext', 'lv-two', 16 * MiB], ['2', 'lvm', '', 32 * MiB],
      ])
      for (const lv of ['one', 'two']) {
        const browser = await session.browser(session.disks[0]!.id, `1/${vg}/${lv}`)
        const page = await browser.list('/data')
        assert.deepEqual(page.entries.map(e => e.name), ['name.txt', 'small.bin', 'sub'])
        const out = join(scratch.path, `${lv}.tar`)
        await fetchToPath(browser, ['/data'], 'tar', out)
        const unpacked = join(scratch.path, `unpacked-${lv}`)
        await mkdir(unpacked)
        await run('tar', ['-xf', out, '-C', unpacked])
        await run('diff', ['-r', join(sources[lv]!, 'data'), join(unpacked, 'data')])
      }
    } finally {
      await session.close()
    }
  } finally {
    await env.cleanup()
    await scratch.cleanup()
  }
})
