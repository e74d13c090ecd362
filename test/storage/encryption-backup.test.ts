// Backups to an encrypted remote opened as the daemon opens it (openRemote of a URL with encryptionKey), against
// the lab over HTTP, full and delta (VhdDirectories behind aliases, merged by retention): every restore point
// restores to the snapshot's bytes, nothing is stored in plaintext, and Xen Orchestra's own handler reads the
// backup's files with the same key.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { restoreBackup } from '../../source/engine/restore/index.ts'
import { listVmBackups, type VmBackup } from '../../source/repository/index.ts'
import { openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { destroyVmAndDisks, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { xoFs } from '../helpers/xo-npm.ts'
import { describeFailure, job, newestJobSnapshot, runToEnd, startEngineLab, vmByName, vmDigests, type EngineLab } from '../engine/helpers.ts'

const KEY = '73c1838d7d8a6088ca2317fb5f29cd91'
const MiB = 1024 * 1024

let env: EngineLab
let remoteDir: { path: string; cleanup: () => Promise<void> }
let vault: RemoteHandler

before(async () => {
  env = await startEngineLab({ remotes: [] })
  remoteDir = await tempDir('lifeboat-crypt-remote-')
  vault = openRemote(`file://${remoteDir.path}?useVhdDirectory=true&encryptionKey=${encodeURIComponent(JSON.stringify(KEY))}`)
  await vault.sync()
})

after(async () => {
  await vault?.close()
  await env?.cleanup()
  await remoteDir?.cleanup()
})

/** Runs the job `runs` times to the encrypted remote, guest writes between runs; the snapshots' digests by uuid. */
async function backUp(theJob: ReturnType<typeof job>, vm: XapiRecord, runs: number): Promise<Map<string, string[]>> {
  const conn = env.conns[0]!
  const context = { ...env, context: { pools: env.context.pools, remotes: new Map([['vault', vault]]) } }
  const expected = new Map<string, string[]>()
  for (let run = 0; run < runs; run++) {
    if (run > 0) await env.lab.control.writeVdi(vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: (run * 3 + 1) * MiB, length: 2 * MiB, seed: 70 + run })
    const tree = await runToEnd(context, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const snapshot = await newestJobSnapshot(env, vm, theJob.id)
    expected.set(snapshot.uuid, await vmDigests(conn, snapshot))
  }
  return expected
}

/** Every backup restored from the encrypted remote has the disks' bytes of the snapshot it was made from. */
async function checkRestores(backups: VmBackup[], expected: Map<string, string[]>): Promise<void> {
  const conn = env.conns[0]!
  const sr = conn.all('SR').find(s => s.content_type !== 'iso')!
  for (const backup of backups) {
    const restored = await restoreBackup(vault, backup.id, conn, sr.uuid)
    try {
      const restoredVm = await conn.waitFor(() => conn.byRef(restored.vmRef), { what: 'the restored VM', timeoutMs: 10_000 })
      await conn.waitFor(() => vmDisks(conn, restoredVm).length > 0 || undefined, { what: 'the restored disks', timeoutMs: 10_000 })
      assert.deepEqual(await vmDigests(conn, conn.byRef(restored.vmRef)!), expected.get(backup.vmSnapshot.uuid), `restore of ${backup.id}`)
    } finally {
      await destroyVmAndDisks(conn, restored.vmRef)
    }
  }
}

/** No stored file under the VM's folder holds any of these strings. */
async function checkNoPlaintext(vmUuid: string, plaintexts: string[]): Promise<void> {
  const vmFolder = join(remoteDir.path, 'xo-vm-backups', vmUuid)
  const names = await readdir(vmFolder, { recursive: true, withFileTypes: true })
  const files = names.filter(entry => entry.isFile()).map(entry => join(entry.parentPath, entry.name))
  assert.ok(files.length > 0, 'the VM folder holds files')
  for (const file of files) {
    const stored = await readFile(file)
    for (const plaintext of plaintexts) assert.equal(stored.includes(plaintext), false, `${file} holds "${plaintext}" in plaintext`)
  }
}

test('full backups to an encrypted remote restore to the snapshot bytes; the stored files hold no plaintext; XO reads the metadata', async () => {
  const vm = vmByName(env.conns[0]!, 'tiny-running')
  const expected = await backUp(job({ mode: 'full', vms: { uuids: [vm.uuid] }, remotes: ['vault'] }), vm, 2)
  const backups = await listVmBackups(vault, vm.uuid)
  assert.equal(backups.length, 2)
  await checkRestores(backups, expected)
  await checkNoPlaintext(vm.uuid, ['ova.xml', vm.uuid, '"mode"'])
  const metadata = backups.map(backup => backup._filename.slice(1))
  const read = await xoFs(remoteDir.path, KEY, [{ op: 'sync' }, ...metadata.map(path => ({ op: 'readFile' as const, path }))])
  assert.deepEqual(read.map(r => r.ok), [true, ...metadata.map(() => true)], JSON.stringify(read.filter(r => !r.ok)))
  for (const result of read.slice(1)) {
    const json = JSON.parse(Buffer.from(result.data!, 'base64').toString()) as { vm: { uuid: string }; mode: string }
    assert.deepEqual([json.vm.uuid, json.mode], [vm.uuid, 'full'], 'XO decrypts Lifeboat\'s backup metadata')
  }
})

test('delta backups to an encrypted remote are VhdDirectories behind aliases, merged by retention, and restore to the snapshot bytes', async () => {
  const vm = vmByName(env.conns[0]!, 'tiny-halted')
  const schedules = [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2, snapshots: 1 } }]
  const expected = await backUp(job({ id: 'delta-job', mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['vault'], schedules }), vm, 4)
  const backups = await listVmBackups(vault, vm.uuid)
  assert.equal(backups.length, 2, 'retention kept 2: the older ones were merged')
  await checkRestores(backups, expected)
  // VHD footers and headers ('conectix', 'cxsparse') and the aliases' text ('data/') are all encrypted.
  await checkNoPlaintext(vm.uuid, ['conectix', 'cxsparse', 'data/', vm.uuid])
  const newest = backups.at(-1)!
  assert.equal(newest.mode, 'delta')
  const alias = newest.mode === 'delta' ? Object.values(newest.vhds)[0]! : ''
  assert.match(alias, /\.alias\.vhd$/, 'the disk is stored behind an alias')
  const [, read] = await xoFs(remoteDir.path, KEY, [{ op: 'sync' }, { op: 'readFile', path: `xo-vm-backups/${vm.uuid}/${alias}` }])
  assert.match(Buffer.from(read?.data ?? '', 'base64').toString(), /^data\/\d{8}T\d{6}Z\.vhd/, `XO decrypts the alias: ${read?.message ?? ''}`)
})
