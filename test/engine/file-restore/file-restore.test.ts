// File-level restore end to end: disks built here (GPT: ext4, two LVM PVs with a linear and a striped volume,
// XFS, NTFS) written into a lab VM's disk, backed up as a delta chain of three links, then browsed from each
// restore point and fetched as tar and zip, which the system's tar and unzip unpack to the very bytes written.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, symlink, writeFile, utimes, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { listVmBackups } from '../../../source/repository/index.ts'
import { vmDisks } from '../../../source/xapi/index.ts'
import { FileRestoreSession, fetchToPath } from '../../../source/engine/file-restore/index.ts'
import { describeFailure, job, runToEnd, startEngineLab, vmByName, type EngineLab } from '../helpers.ts'
import { run, tempDir } from '../../helpers/tools.ts'
import { LV_SIZE, MiB, ext4Image, mountedImage, partitionedDisk, place, requireDiskTools, writeLvm } from './disk-image.ts'

const LINUX = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'
const LVM = 'E6D6D379-F507-44C2-A23C-238F2A3DF928'
const BASIC_DATA = 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7'
const DISK_MiB = 512
const PARTS = [
  { startMiB: 1, sizeMiB: 64, type: LINUX },
  { startMiB: 65, sizeMiB: 32, type: LVM },
  { startMiB: 97, sizeMiB: 32, type: LVM },
  { startMiB: 129, sizeMiB: 320, type: LINUX },
  { startMiB: 449, sizeMiB: 40, type: BASIC_DATA },
]
const ENTRIES = 100_000

/** The files of generation `g`: binary, empty, a long and a non-ASCII name, nested folders, a symbolic link. */
async function generation(dir: string, g: number): Promise<string> {
  const root = join(dir, `gen${g}`)
  await mkdir(join(root, 'data', 'sub', 'deeper'), { recursive: true })
  await mkdir(join(root, 'data', 'empty'))
  await writeFile(join(root, 'data', 'blob.bin'), randomBytes(300_000 + g))
  await writeFile(join(root, 'data', 'gen.txt'), `generation ${g}\n`)
  await writeFile(join(root, 'data', 'empty.txt'), '')
  await writeFile(join(root, 'data', 'sub', `${'long-name-'.repeat(14)}${g}.dat`), randomBytes(5000))
  await writeFile(join(root, 'data', 'sub', 'deeper', 'ünïcødé €.txt'), `g${g}`)
  await writeFile(join(root, 'data', 'sub', 'big.bin'), randomBytes(3 * MiB + 17))
  await symlink('../blob.bin', join(root, 'data', 'sub', 'link'))
  await chmod(join(root, 'data', 'gen.txt'), 0o640)
  await utimes(join(root, 'data', 'gen.txt'), new Date('2026-03-15T02:00:00Z'), new Date('2026-03-15T02:00:00Z'))
  for (let k = 1; k < g; k++) await writeFile(join(root, 'data', `added-${k}.bin`), randomBytes(MiB + k))
  return root
}

/** Writes to the VM's disk the 1 MiB chunks of `image` that differ from `previous`: the guest's writes between backups. */
async function writeChanges(env: EngineLab, vdiUuid: string, image: string, previous: Buffer | undefined): Promise<Buffer> {
  const content = await readFile(image)
  for (let at = 0; at < content.length; at += MiB) {
    const chunk = content.subarray(at, at + MiB)
    const before = previous?.subarray(at, at + MiB)
    if (before === undefined ? chunk.every(b => b === 0) : chunk.equals(before)) continue
    await env.lab.control.writeVdi(vdiUuid, { offset: at, data: chunk.toString('base64') })
  }
  return content
}

async function buildDisk(scratch: string, g: number, files: string, firstPartition: string): Promise<string> {
  const disk = join(scratch, `disk${g}.img`)
  await partitionedDisk(disk, DISK_MiB, 'gpt', PARTS)
  await place(disk, PARTS[0]!.startMiB * MiB, firstPartition)
  const linear = join(scratch, `linear${g}.img`)
  const striped = join(scratch, `striped${g}.img`)
  await ext4Image(linear, LV_SIZE, files, { label: 'linear' })
  await ext4Image(striped, LV_SIZE, files, { label: 'striped' })
  await writeLvm(disk, {
    pvs: [1, 2].map(k => ({ offset: PARTS[k]!.startMiB * MiB, size: PARTS[k]!.sizeMiB * MiB, uuid: `pv${k}AAAABBBBCCCCDDDDEEEEFFFFGGGGHH`.slice(0, 32) })),
    linear: { image: linear }, striped: { image: striped },
  })
  for (const [k, kind] of [[3, 'xfs'], [4, 'ntfs']] as const) {
    const image = join(scratch, `${kind}${g}.img`)
    await mountedImage(kind, image, PARTS[k]!.sizeMiB * MiB, files, scratch)
    await place(disk, PARTS[k]!.startMiB * MiB, image)
    await rm(image)
  }
  await rm(linear)
  await rm(striped)
  return disk
}

test('file-level restore: GPT, ext4, LVM linear and striped, XFS and NTFS, from each link of a delta chain, as tar and zip', { timeout: 900_000 }, async () => {
  requireDiskTools()
  const scratch = await tempDir('lifeboat-file-restore-')
  const env = await startEngineLab()
  try {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-running')
    const vdi = vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi
    await conn.call('VDI.resize_online', vdi.$ref, DISK_MiB * MiB)

    // Partition 1 is written once (its blocks then come from the chain's base): the files of generation 1
    // and a folder of 100 000 entries, made through the kernel (mkfs.ext4 -d inserts names one scan at a time).
    const first = await generation(scratch.path, 1)
    const p1 = join(scratch.path, 'p1.img')
    await ext4Image(p1, PARTS[0]!.sizeMiB * MiB, first, { label: 'vmroot', inodes: ENTRIES + 20_000 })
    const mnt = join(scratch.path, 'mnt-p1')
    await mkdir(mnt)
    await run('mount', ['-o', 'loop', p1, mnt])
    try {
      await mkdir(join(mnt, 'many'))
      await run('sh', ['-c', `cd '${join(mnt, 'many')}' && seq -f 'f%06g' 0 ${ENTRIES - 1} | xargs touch`])
    } finally {
      await run('umount', [mnt])
    }

    const theJob = job({ id: 'fr-job', mode: 'delta', vms: { uuids: [vm.uuid] }, schedules: [{ id: 's', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 10, snapshots: 1 }, fullInterval: 10 }] })
    const sources: string[] = []
    let previous: Buffer | undefined
    for (let g = 1; g <= 3; g++) {
      const files = g === 1 ? first : await generation(scratch.path, g)
      sources.push(files)
      const disk = await buildDisk(scratch.path, g, files, p1)
      previous = await writeChanges(env, vdi.uuid, disk, previous)
      await rm(disk)
      const tree = await runToEnd(env, theJob)
      assert.equal(tree.status, 'success', describeFailure(tree))
    }
    const handler = env.remotes.get('a')!
    const backups = (await listVmBackups(handler, vm.uuid)).sort((a, b) => a.timestamp - b.timestamp)
    assert.equal(backups.length, 3)
    assert.deepEqual(backups.map(b => Object.values(b.isVhdDifferencing ?? {})[0]), [false, true, true], 'one full, then two deltas: a chain of three links')

    for (const [g, backup] of backups.entries()) {
      const session = await FileRestoreSession.open(handler, backup.id, { workDir: join(scratch.path, 'work') })
      try {
        assert.equal(session.disks.length, 1)
        const disk = session.disks[0]!
        const volumes = await session.volumes(disk.id)
        assert.deepEqual(volumes.map(v => [v.id, v.content, v.label ?? '']), [
          ['1', 'ext', 'vmroot'], ['2', 'lvm', ''], ['2/vg_test/linear', 'ext', 'linear'], ['2/vg_test/striped', 'ext', 'striped'],
          ['3', 'lvm', ''], ['4', 'xfs', 'xfsdata'], ['5', 'ntfs', ''],
        ])
        for (const volume of ['1', '2/vg_test/linear', '2/vg_test/striped', '4', '5']) {
          // Partition 1 holds generation 1 at every restore point; the others hold the restore point's own.
          const source = volume === '1' ? sources[0]! : sources[g]!
          const browser = await session.browser(disk.id, volume)
          const page = await browser.list('/data')
          assert.ok(page.entries.some(e => e.name === 'gen.txt' && e.type === 'file' && e.size === `generation ${volume === '1' ? 1 : g + 1}\n`.length), `${volume}: ${JSON.stringify(page.entries.map(e => e.name))}`)
          for (const format of ['tar', 'zip'] as const) {
            const out = join(scratch.path, `fetch-${g}-${volume.replaceAll('/', '_')}.${format}`)
            const result = await fetchToPath(browser, ['/data'], format, out)
            assert.ok(result.files >= 6, `${volume} ${format}: ${result.files} files`)
            const unpacked = join(scratch.path, `unpacked-${g}-${volume.replaceAll('/', '_')}-${format}`)
            await mkdir(unpacked)
            if (format === 'tar') await run('tar', ['-xf', out, '-C', unpacked])
            else await run('unzip', ['-q', out, '-d', unpacked])
            // diff -r compares every byte and every link target (NTFS keeps no unix modes, so only content).
            await run('diff', ['-r', '--no-dereference', join(source, 'data'), join(unpacked, 'data')])
            if (volume !== '5') {
              const mode = (await run('stat', ['-c', '%a %Y', join(unpacked, 'data', 'gen.txt')])).stdout.toString().trim()
              assert.equal(mode, `640 ${Date.parse('2026-03-15T02:00:00Z') / 1000}`, `${volume} ${format}: mode and mtime kept`)
            }
            await rm(unpacked, { recursive: true })
            await rm(out)
          }
        }
        const found = await (await session.browser(disk.id, '4')).find('/', 'ünïcødé')
        assert.deepEqual(found.matches.map(m => m.path), ['/data/sub/deeper/ünïcødé €.txt'])
      } finally {
        await session.close()
      }
    }
    const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').filter(line => line.includes(scratch.path))
    assert.deepEqual(mounts, [], 'every mount is gone once the sessions are closed')

    // The 100 000-entry folder, page by page: every name once, in order, no page beyond its limit.
    const session = await FileRestoreSession.open(handler, backups[2]!.id, { workDir: join(scratch.path, 'work') })
    try {
      const browser = await session.browser(session.disks[0]!.id, '1')
      const names: string[] = []
      let after: string | undefined
      do {
        const page = await browser.list('/many', { limit: 1000, ...(after !== undefined && { after }) })
        assert.equal(page.total, ENTRIES)
        assert.ok(page.entries.length <= 1000, `a page holds at most its limit, not ${page.entries.length}`)
        names.push(...page.entries.map(e => e.name))
        after = page.next
      } while (after !== undefined)
      assert.equal(names.length, ENTRIES)
      assert.equal(new Set(names).size, ENTRIES)
      assert.deepEqual(names.slice(0, 2), ['f000000', 'f000001'])
      assert.equal(names.at(-1), `f0${ENTRIES - 1}`)
      // As a zip: more than 65 535 entries, so the ZIP64 end records; unzip lists them all.
      const zip = join(scratch.path, 'many.zip')
      await fetchToPath(browser, ['/many'], 'zip', zip)
      const listing = (await run('unzip', ['-Z1', zip])).stdout.toString().trim().split('\n')
      assert.equal(listing.length, ENTRIES + 1)
      await run('unzip', ['-tq', zip])
    } finally {
      await session.close()
    }
  } finally {
    await env.cleanup()
    await scratch.cleanup()
  }
})
