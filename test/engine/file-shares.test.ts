// Backups to file shares end to end, the same suite on SMB (Samba) and NFS (nfs-ganesha) started by the test:
// the lab over HTTP, remotes opened from their URL as the daemon opens them. A delta job with retention that
// merges, as VHD files and as VhdDirectory; every kept point restored onto the pool with its snapshot's bytes,
// and the files on the share read by independent readers (qemu-img, libvhdi) through the exported folder.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { listVmBackups, vmDir } from '../../source/repository/index.ts'
import { libvhdiRaw, qemuRaw } from '../formats/fixtures/vhd/disks.ts'
import type { ShareServer } from '../helpers/share-server.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'
import { checkRestores, job, runWithWrites, SHARE_SERVERS, startEngineLab, vmByName, type EngineLab } from './helpers.ts'

const daily = (backups: number) => [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups, snapshots: 1 } }]
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

for (const [index, { name, start }] of SHARE_SERVERS.entries()) {
  describe(`delta backups to ${name}`, () => {
    let server: ShareServer
    let env: EngineLab
    let scratch: Awaited<ReturnType<typeof tempDir>>

    before(async () => {
      requireTool('qemu-img', 'qemu-utils')
      requireTool('vhdimount', 'libvhdi-utils')
      scratch = await tempDir('lifeboat-file-shares-')
      server = await start()
      env = await startEngineLab({ remoteUrls: { files: server.urlFor('files'), directories: server.urlFor('directories', { useVhdDirectory: true }) } })
    })

    after(async () => {
      await env?.cleanup()
      await server?.cleanup()
      await scratch?.cleanup()
    })

    test('4 runs with guest writes, retention 2: VHD files merged into the oldest kept, every kept point restores; qemu-img and libvhdi read the files on the share', async () => {
      const vm = vmByName(env.conns[0]!, 'tiny-running')
      const theJob = job({ id: `files-${server.kind}`, mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['files'], schedules: daily(2) })
      const expected = await runWithWrites(env, theJob, 4, 100 + index * 10)
      const backups = await listVmBackups(env.remotes.get('files')!, vm.uuid)
      assert.equal(backups.length, 2, 'retention keeps 2 backups')
      const [oldest, newest] = backups
      assert.ok(oldest?.mode === 'delta' && newest?.mode === 'delta', 'both kept backups are deltas')
      assert.ok(Object.values(oldest.isVhdDifferencing ?? {}).every(d => d === false), 'the oldest kept backup took the merged deltas (no longer differencing)')
      assert.ok(Object.values(newest.isVhdDifferencing ?? {}).some(d => d === true), 'the newest backup is still a delta on top of it')
      await checkRestores(env, 'files', backups, expected)

      // The independent readers, on the files as the server stored them: qemu-img reads the merged disk (it sizes
      // a disk by its CHS geometry, a little short: compare what it gives), libvhdi the newest through its parent.
      const onShare = (path: string) => join(server.root, 'files', vmDir(vm.uuid), path)
      // tiny-running has one disk (each backup names it by its own snapshot's VDI).
      const [path] = Object.values(newest.vhds)
      const [parentPath] = Object.values(oldest.vhds)
      assert.ok(path !== undefined && parentPath !== undefined && Object.keys(newest.vhds).length === 1, 'one disk in each kept backup')
      assert.match(path, /\.vhd$/, 'a plain VHD file, not a VhdDirectory')
      const chain = await libvhdiRaw(onShare(path), scratch.path)
      assert.equal(sha256(chain), expected.get(newest.vmSnapshot.uuid)![0], `libvhdi reads ${path} through its parent as the snapshot's disk`)
      const merged = await libvhdiRaw(onShare(parentPath), scratch.path)
      assert.equal(sha256(merged), expected.get(oldest.vmSnapshot.uuid)![0], `libvhdi reads the merged ${parentPath} as the oldest kept snapshot's disk`)
      const viaQemu = await qemuRaw(onShare(parentPath), scratch.path)
      assert.ok(viaQemu.length > merged.length - 64 * 1024 && viaQemu.equals(merged.subarray(0, viaQemu.length)), 'qemu-img reads the merged disk as libvhdi does')
      assert.deepEqual((await readdir(join(server.root, 'files'), { recursive: true })).filter(path => /\.tmp$|\.merge\.json$/.test(path)), [], 'no temporary file or merge state is left on the share')
    })

    test('VhdDirectory (?useVhdDirectory=true), 3 runs, retention 2: folders of blocks behind aliases on the share, merged, every kept point restores', async () => {
      const vm = vmByName(env.conns[0]!, 'tiny-running')
      const theJob = job({ id: `directories-${server.kind}`, mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['directories'], schedules: daily(2) })
      const expected = await runWithWrites(env, theJob, 3, 200 + index * 10)
      const backups = await listVmBackups(env.remotes.get('directories')!, vm.uuid)
      assert.equal(backups.length, 2, 'retention keeps 2 backups')
      const [oldest, newest] = backups
      assert.ok(oldest?.mode === 'delta' && newest?.mode === 'delta', 'both kept backups are deltas')
      assert.ok(Object.values(oldest.isVhdDifferencing ?? {}).every(d => d === false), 'the oldest kept backup took the merged delta')
      for (const backup of [oldest, newest]) {
        for (const path of Object.values(backup.vhds)) {
          assert.match(path, /\.alias\.vhd$/, 'VhdDirectory disks are behind aliases')
          // Read straight from the exported folder: the alias names its data folder (relative to itself), which holds XO's layout.
          const alias = join(server.root, 'directories', vmDir(vm.uuid), path)
          const target = (await readFile(alias, 'utf8')).trim()
          const entries = await readdir(join(dirname(alias), target))
          for (const part of ['bat', 'footer', 'header', 'blocks']) assert.ok(entries.includes(part), `${target} holds ${part} (${entries.join(', ')})`)
        }
      }
      await checkRestores(env, 'directories', backups, expected)
    })
  })
}
