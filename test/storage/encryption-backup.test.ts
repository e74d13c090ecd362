// Backups to an encrypted remote opened as the daemon opens it (openRemote of a URL with encryptionKey), against
// the lab over HTTP: every restore point restores to the snapshot's bytes, nothing is stored in plaintext, and
// Xen Orchestra's own handler reads the backup's metadata with the same key.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { restoreBackup } from '../../source/engine/restore/index.ts'
import { listVmBackups } from '../../source/repository/index.ts'
import { openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { destroyVmAndDisks, vmDisks } from '../../source/xapi/index.ts'
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

test('full backups to an encrypted remote restore to the snapshot bytes; the stored files hold no plaintext; XO reads the metadata', async () => {
  const conn = env.conns[0]!
  const context = { ...env, context: { pools: env.context.pools, remotes: new Map([['vault', vault]]) } }
  const vm = vmByName(conn, 'tiny-running')
  const theJob = job({ mode: 'full', vms: { uuids: [vm.uuid] }, remotes: ['vault'] })
  const expected = new Map<string, string[]>()
  for (let run = 0; run < 2; run++) {
    if (run > 0) await env.lab.control.writeVdi(vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: MiB, length: 2 * MiB, seed: run })
    const tree = await runToEnd(context, theJob)
    assert.equal(tree.status, 'success', describeFailure(tree))
    const snapshot = await newestJobSnapshot(env, vm)
    expected.set(snapshot.uuid, await vmDigests(conn, snapshot))
  }
  const backups = await listVmBackups(vault, vm.uuid)
  assert.equal(backups.length, 2)
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

  const vmFolder = join(remoteDir.path, 'xo-vm-backups', vm.uuid)
  for (const name of await readdir(vmFolder)) {
    const stored = await readFile(join(vmFolder, name))
    for (const plaintext of ['ova.xml', vm.uuid, '"mode"']) assert.equal(stored.includes(plaintext), false, `${name} holds "${plaintext}" in plaintext`)
  }
  const metadata = backups.map(backup => backup._filename.slice(1))
  const read = await xoFs(remoteDir.path, KEY, [{ op: 'sync' }, ...metadata.map(path => ({ op: 'readFile' as const, path }))])
  assert.deepEqual(read.map(r => r.ok), [true, ...metadata.map(() => true)], JSON.stringify(read.filter(r => !r.ok)))
  for (const result of read.slice(1)) {
    const json = JSON.parse(Buffer.from(result.data!, 'base64').toString()) as { vm: { uuid: string }; mode: string }
    assert.deepEqual([json.vm.uuid, json.mode], [vm.uuid, 'full'], 'XO decrypts Lifeboat\'s backup metadata')
  }
})
