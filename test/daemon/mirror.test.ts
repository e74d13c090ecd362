// A mirror job in the daemon, driven through the CLI: created from a job file and from flags, listed as a
// mirror, run by hand after 4 delta backups; killed with -9 in the middle of its copies, interrupted at the
// restart, and resumed by the next run with nothing duplicated or lost: each target ends with exactly the
// source's backups, every disk of every point reading the same bytes as on the source.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { VhdChain } from '../../source/formats/vhd/index.ts'
import { fileSystemAccess, LocalHandler } from '../../source/storage/index.ts'
import { formatFilenameDate, listVmBackups, resolveInVmDir, type VmBackup } from '../../source/repository/index.ts'
import { PoolConnection, vmDisks } from '../../source/xapi/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, startDaemon, waitUntil, type DaemonProcess } from './helpers.ts'

const MiB = 1024 * 1024
let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let dataDir: string
let vmUuid: string

const remoteDir = (name: string) => join(dir.path, 'remotes', name)

before(async () => {
  dir = await tempDir('lifeboat-daemon-mirror-')
  dataDir = join(dir.path, 'daemon')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(dataDir)
  const pool = lab.pools[0]!
  await cliJson(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-env', 'POOL_PASSWORD'], { POOL_PASSWORD: pool.password })
  for (const name of ['src', 'files', 'dirs']) await mkdir(remoteDir(name), { recursive: true })
  await cliJson(daemon.socket, ['remote', 'add', 'src', `file://${remoteDir('src')}`])
  await cliJson(daemon.socket, ['remote', 'add', 'files', `file://${remoteDir('files')}`])
  await cliJson(daemon.socket, ['remote', 'add', 'dirs', `file://${remoteDir('dirs')}?useVhdDirectory=true`])
  vmUuid = (await cliJson(daemon.socket, ['vm', 'list'])).find((vm: { name: string }) => vm.name === 'tiny-running').uuid
})

after(async () => {
  if (daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM')
    await daemon.exited
  }
  await lab.stop()
  await dir.cleanup()
})

/** sha256 of each disk of a backup, read through its chain on the remote. */
async function pointDigests(remote: string, backup: VmBackup): Promise<string[]> {
  if (backup.mode !== 'delta') throw new Error('delta backups only here')
  const handler = new LocalHandler(remoteDir(remote))
  const digests: string[] = []
  for (const ref of Object.keys(backup.vhds).sort()) {
    const chain = await VhdChain.open(resolveInVmDir(vmUuid, backup.vhds[ref]!), { fs: fileSystemAccess(handler) })
    try {
      const hash = createHash('sha256')
      for (let offset = 0; offset < chain.size; offset += 4 * MiB) hash.update(await chain.read(offset, Math.min(4 * MiB, chain.size - offset)))
      digests.push(hash.digest('hex'))
    } finally {
      await chain.close()
    }
  }
  return digests
}

async function backupsOn(remote: string): Promise<VmBackup[]> {
  return listVmBackups(new LocalHandler(remoteDir(remote)), vmUuid)
}

test('a mirror job from flags and from a file; job list names it; the source remote must exist', async () => {
  const missing = await cli(daemon.socket, ['job', 'create', '--name', 'nowhere', '--mode', 'delta', '--source-remote', 'nope', '--remote', 'files', '--json'])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /sourceRemote: No remote is named "nope"/)
  const fromFlags = await cliJson(daemon.socket, ['job', 'create', '--name', 'by-flags', '--mode', 'delta', '--source-remote', 'src', '--remote', 'files', '--tag', 'prod', '--retention', '5', '--disabled-schedule'])
  assert.equal(fromFlags.job.type, 'mirror')
  assert.deepEqual(fromFlags.job.vms, { smart: { pools: [], notPools: [], tags: ['prod'], notTags: [] } })
  assert.deepEqual(fromFlags.job.schedules[0].retention, { backups: 5 })
  const list = await cli(daemon.socket, ['job', 'list'])
  assert.match(list.stdout, /by-flags +delta mirror +src → files/)
  await cliJson(daemon.socket, ['job', 'delete', fromFlags.job.id])
})

test('4 delta backups, a mirror killed with -9 mid-copy, the next run resumes: every point on both targets once, byte-exact', async () => {
  const backupFile = join(dir.path, 'backup.json')
  await writeFile(backupFile, JSON.stringify({
    name: 'nightly', mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['src'],
    schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC', enabled: false, retention: { backups: 10, snapshots: 1 } }],
  }))
  await cliJson(daemon.socket, ['job', 'create', '--file', backupFile])
  const pool = lab.pools[0]!
  const conn = await PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password })
  const disk = vmDisks(conn, conn.get('VM', vmUuid))[0]!.vdi.uuid as string
  await conn.disconnect()
  for (let run = 0; run < 4; run++) {
    await lab.control.writeVdi(disk, { offset: (run * 5 + 1) * MiB, length: 3 * MiB, seed: 300 + run })
    const result = await cliJson(daemon.socket, ['job', 'run', 'nightly', '--wait'])
    assert.equal(result.status, 'success', JSON.stringify(result.tree))
  }
  const source = await backupsOn('src')
  assert.equal(source.length, 4)

  const mirrorFile = join(dir.path, 'mirror.json')
  await writeFile(mirrorFile, JSON.stringify({
    name: 'offsite', type: 'mirror', mode: 'delta', sourceRemote: 'src', remotes: ['files', 'dirs'],
    // Slow enough to be killed in the middle of its copies.
    settings: { maxExportRate: 3 * MiB },
    schedules: [{ name: 'nightly', cron: '0 5 * * *', timezone: 'UTC', enabled: false, retention: { backups: 10 } }],
  }))
  const created = await cliJson(daemon.socket, ['job', 'create', '--file', mirrorFile])
  assert.equal(created.job.type, 'mirror')
  const { runId } = await cliJson(daemon.socket, ['job', 'run', 'offsite'])
  // Killed once the copy of the second backup has started: the first is on the targets, the second half-written.
  await waitUntil('the second copy to start', async () => {
    const { tree } = await cliJson(daemon.socket, ['run', 'show', runId])
    return (JSON.stringify(tree).match(/mirroring a backup/g) ?? []).length >= 2 ? true : undefined
  }, 120_000)
  daemon.child.kill('SIGKILL')
  assert.equal(await daemon.exited, 'SIGKILL')
  const partial = await backupsOn('files')
  assert.ok(partial.length < 4, `the kill came before the end (${partial.length} copied)`)

  daemon = await startDaemon(dataDir)
  const killed = (await cliJson(daemon.socket, ['run', 'show', runId])).summary
  assert.equal(killed.status, 'interrupted')
  assert.equal(killed.kind, 'mirror', 'a mirror run is listed as one (it said backup)')
  const resumed = await cliJson(daemon.socket, ['job', 'run', 'offsite', '--wait'])
  assert.equal(resumed.status, 'success', JSON.stringify(resumed.tree))

  const dates = (backups: VmBackup[]) => backups.map(backup => formatFilenameDate(backup.timestamp))
  for (const target of ['files', 'dirs']) {
    const copies = await backupsOn(target)
    assert.deepEqual(dates(copies), dates(source), `${target}: each source backup once, under its date`)
    for (let i = 0; i < source.length; i++) assert.deepEqual(await pointDigests(target, copies[i]!), await pointDigests('src', source[i]!), `${target}: ${dates(copies)[i]} reads as on the source`)
    const chainFolder = join(remoteDir(target), 'xo-vm-backups', vmUuid, 'vdis', created.job.id)
    for (const vdi of await readdir(chainFolder)) {
      const names = (await readdir(join(chainFolder, vdi))).filter(name => !name.startsWith('.'))
      const disks = names.filter(name => name.endsWith('.vhd'))
      assert.equal(disks.length, 4, `${target}: 4 disks in the chain of ${vdi}, no leftover (${names.join(', ')})`)
      if (target === 'dirs') assert.equal((await readdir(join(chainFolder, vdi, 'data'))).length, 4, 'one VhdDirectory per alias')
    }
  }
  // Nothing more to copy: the next run transfers nothing.
  const idle = await cliJson(daemon.socket, ['job', 'run', 'offsite', '--wait'])
  assert.equal(idle.status, 'success')
  assert.doesNotMatch(JSON.stringify(idle.tree), /"transfer"/)
})
