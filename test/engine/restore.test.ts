// Restore against the lab over HTTP with the real xen-api client: backups are built by hand (lab snapshots,
// XAPI exports, commitBackup with XO-shaped metadata), restored, and the restored disks' raw bytes compared
// with the snapshots' raw exports. Cancels and broken backups must leave nothing on the pool.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { Transform } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import { restoreBackup } from '../../source/engine/restore/index.ts'
import { createVhdStream, openVhdStream } from '../../source/formats/vhd/index.ts'
import { startLab, type Lab, type LabPool } from '../../source/lab/index.ts'
import { allocateBackupDate, commitBackup, METADATA_VERSION, vhdRef, xvaRef, type BackupMetadata } from '../../source/repository/index.ts'
import { LocalHandler, type RemoteHandler } from '../../source/storage/index.ts'
import { TaskLog, type TaskEvent, type TaskNode } from '../../source/tasks/index.ts'
import { startRestoreRun } from '../../source/engine/run/restore-run.ts'
import { destroyVmAndDisks, exportVdiVhd, exportVmXva, PoolConnection, snapshotVm, vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { errorCode } from '../../source/util/errors.ts'
import { connect, type XapiClient } from '../lab/helpers.ts'
import { requireTool, tempDir } from '../helpers/tools.ts'

const MiB = 1024 * 1024
const JOB = 'c0ffee00-0000-4000-8000-000000000001'
const SCHEDULE = 'c0ffee00-0000-4000-8000-000000000002'
const holder = { runId: 'restore-test', vm: 'test', phase: 'export' }

interface Pool {
  lab: LabPool
  conn: PoolConnection
  raw: XapiClient
  srUuid: string
}

interface BuiltBackup {
  id: string
  /** sha256 of the snapshot's disk, as /export_raw_vdi/ gives it. */
  diskDigest: string
}

let lab: Lab
let labDir: Awaited<ReturnType<typeof tempDir>>
let remoteDir: Awaited<ReturnType<typeof tempDir>>
let handler: LocalHandler
let source: Pool
let target: Pool

async function openPool(pool: LabPool): Promise<Pool> {
  const conn = await PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password })
  // The client waits its default 60 s before polling events again after an error, such as the lab stopping
  // under a disconnected client's last event.from: that wait would hold the test process open.
  ;(conn.xapi as unknown as { _eventPollDelay: number })._eventPollDelay = 200
  const sr = conn.all('SR')[0]!
  return { lab: pool, conn, raw: await connect(pool), srUuid: sr.uuid as string }
}

before(async () => {
  requireTool('zstd', 'zstd')
  labDir = await tempDir('lifeboat-restore-lab-')
  remoteDir = await tempDir('lifeboat-restore-remote-')
  lab = await startLab({ dataDir: labDir.path, fixture: 'pair' })
  handler = new LocalHandler(remoteDir.path)
  await handler.sync()
  source = await openPool(lab.pools[0]!)
  target = await openPool(lab.pools[1]!)
})

after(async () => {
  for (const pool of [source, target]) {
    await pool?.conn.disconnect()
    await pool?.raw.disconnect()
  }
  await lab?.stop()
  await labDir?.cleanup()
  await remoteDir?.cleanup()
})

/** A record as XO stores it in metadata: the fields, without the client's $-links. */
function plain(record: XapiRecord): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).filter(([key]) => !key.startsWith('$')))
}

function liveVm(name: string): XapiRecord {
  const vm = source.conn.all('VM').find(vm => vm.name_label === name && vm.is_a_snapshot !== true)
  assert.ok(vm, `the lab has a VM named ${name}`)
  return vm
}

async function diskDigest(pool: Pool, vdiRef: string): Promise<string> {
  const response = await pool.raw.getResource('/export_raw_vdi/', { query: { vdi: vdiRef, format: 'raw' } })
  const hash = createHash('sha256')
  for await (const chunk of response.body) hash.update(chunk)
  await response.task
  return hash.digest('hex')
}

async function snapshot(vm: XapiRecord): Promise<XapiRecord> {
  const { ref } = await snapshotVm(source.conn, vm, {
    name: `[XO Backup test] ${vm.name_label}`, holder,
    otherConfig: { 'xo:backup:job': JOB, 'xo:backup:schedule': SCHEDULE, 'xo:backup:vm': vm.uuid as string, 'xo:backup:datetime': '20260101T00:00:00Z' },
  })
  return source.conn.waitFor(() => source.conn.byRef(ref), { what: 'the snapshot record', timeoutMs: 10_000 })
}

function commonMetadata(vm: XapiRecord, snap: XapiRecord, timestamp: number) {
  return { version: METADATA_VERSION, jobId: JOB, scheduleId: SCHEDULE, timestamp, size: 0, vm: plain(vm) as BackupMetadata['vm'], vmSnapshot: plain(snap) as BackupMetadata['vm'] }
}

async function backupFull(vm: XapiRecord, compression?: 'zstd' | 'gzip'): Promise<BuiltBackup> {
  const snap = await snapshot(vm)
  const { timestamp, date } = await allocateBackupDate(handler, vm.uuid as string)
  const exported = await exportVmXva(source.conn, snap.$ref, { holder, ...(compression && { compression }) })
  const backup = await commitBackup(handler, { ...commonMetadata(vm, snap, timestamp), mode: 'full', xva: xvaRef(date) }, [{ ref: xvaRef(date), source: exported.stream }])
  await exported.task
  return { id: backup.id, diskDigest: await diskDigest(source, vmDisks(source.conn, snap)[0]!.vdi.$ref) }
}

/** A delta chain as XO writes it: the first backup full, the next ones differencing, each guest-written before. */
async function backupDeltaChain(vm: XapiRecord, length: number): Promise<BuiltBackup[]> {
  const live = vmDisks(source.conn, vm)[0]!
  const vif = source.conn.byRef((vm.VIFs as string[])[0]!)!
  const network = source.conn.byRef(vif.network as string)!
  const backups: BuiltBackup[] = []
  let parent: { vdi: XapiRecord; name: string } | undefined
  for (let index = 0; index < length; index++) {
    if (index > 0) await source.lab.control.writeVdi(live.vdi.uuid as string, { offset: (3 + 5 * index) * MiB + 4096, length: 3 * MiB, seed: 40 + index })
    const snap = await snapshot(vm)
    const disk = vmDisks(source.conn, snap)[0]!
    const { timestamp, date } = await allocateBackupDate(handler, vm.uuid as string)
    const exported = await exportVdiVhd(source.conn, disk.vdi.$ref, { holder, ...(parent && { baseRef: parent.vdi.$ref }) })
    // XO's conventions: footer uuid = the snapshot VDI's, parent named relative to the file.
    const vhd = await openVhdStream(exported.stream)
    const rewritten = createVhdStream({
      size: vhd.footer.currentSize, uuid: disk.vdi.uuid as string, blockIndexes: vhd.blockIndexes, blocks: vhd.blocks(),
      ...(parent && { parent: { uuid: parent.vdi.uuid as string, unicodeName: parent.name } }),
    })
    const file = vhdRef(JOB, live.vdi.uuid as string, date)
    const vdiRecord = { ...plain(disk.vdi), $snapshot_of$uuid: live.vdi.uuid, $SR$uuid: source.srUuid,
      other_config: { ...(disk.vdi.other_config as object), ...(parent && { 'xo:base_delta_vdi': parent.vdi.uuid as string }) } }
    const metadata: BackupMetadata = {
      ...commonMetadata(vm, snap, timestamp), mode: 'delta',
      vdis: { [disk.vdi.$ref]: vdiRecord as never },
      vbds: { [disk.vbd.$ref]: plain(disk.vbd) },
      vifs: { [vif.$ref]: { ...plain(vif), $network$uuid: network.uuid, $network$name_label: network.name_label, $network$VLAN: -1 } },
      vtpms: [],
      vhds: { [disk.vdi.$ref]: file },
      isVhdDifferencing: { [disk.vdi.$ref]: parent !== undefined },
    }
    const backup = await commitBackup(handler, metadata, [{ ref: file, source: rewritten.stream, options: { length: rewritten.length } }])
    await exported.task
    backups.push({ id: backup.id, diskDigest: await diskDigest(source, disk.vdi.$ref) })
    parent = { vdi: disk.vdi, name: `${date}.vhd` }
  }
  return backups
}

/** Everything on the pool that a restore could leave behind. */
async function poolContents(pool: Pool): Promise<{ vms: string[]; vdis: string[]; pendingTasks: string[] }> {
  const uuids = async (type: string) => ((await pool.conn.call(`${type}.get_all_records`)) as Record<string, { uuid: string }>)
  const vms = Object.values(await uuids('VM')).map(vm => vm.uuid).sort()
  const vdis = Object.values(await uuids('VDI')).map(vdi => vdi.uuid).sort()
  const tasks = (await pool.conn.call('task.get_all_records')) as Record<string, { status: string; name_label: string }>
  return { vms, vdis, pendingTasks: Object.values(tasks).filter(task => task.status === 'pending').map(task => task.name_label) }
}

async function settledContents(pool: Pool, expected: Awaited<ReturnType<typeof poolContents>>): Promise<Awaited<ReturnType<typeof poolContents>>> {
  const deadline = Date.now() + 10_000
  let current = await poolContents(pool)
  while (JSON.stringify(current) !== JSON.stringify(expected) && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 100))
    current = await poolContents(pool)
  }
  return current
}

/** Restores, checks XO's conventions and the disk's bytes, then removes the restored VM. */
async function restoreAndCompare(pool: Pool, backup: BuiltBackup, options: { sourceVm: XapiRecord; macs: 'kept' | 'new' }): Promise<void> {
  const events: TaskEvent[] = []
  const task = TaskLog.start({ name: 'restore' }, { onEvent: event => events.push(event) })
  const { vmRef, vmUuid, vmName } = await restoreBackup(handler, backup.id, pool.conn, pool.srUuid, { task, remoteName: 'test-remote' })
  task.end()
  try {
    // Fresh records (the client's cache may lag the last calls of the restore by an event batch).
    const vm = (await pool.conn.call('VM.get_record', vmRef)) as XapiRecord
    assert.equal(vm.uuid, vmUuid)
    assert.equal(vm.name_label, vmName, 'the result names the VM it created')
    assert.match(String(vm.name_label), new RegExp(`^${options.sourceVm.name_label} \\(\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}\\)$`))
    assert.match(String(vm.name_description), /^Restored on \d{4}-\d{2}-\d{2} \d{2}:\d{2} from test-remote$/)
    assert.ok((vm.tags as string[]).includes('restored from backup'), 'the restored VM is tagged restored from backup')
    assert.equal(vm.power_state, 'Halted')
    assert.equal(vm.is_a_template, false)
    assert.equal(vm.is_a_snapshot, false)
    assert.deepEqual(Object.keys(vm.other_config as object).filter(key => key.startsWith('xo:backup:')), [])
    assert.equal((vm.blocked_operations as Record<string, string>).start, undefined, 'start is not left blocked')
    const vbds = await Promise.all((vm.VBDs as string[]).map(async ref => (await pool.conn.call('VBD.get_record', ref)) as XapiRecord))
    const diskVbds = vbds.filter(vbd => vbd.type === 'Disk')
    assert.equal(diskVbds.length, 1)
    assert.equal(diskVbds[0]!.bootable, true)
    const vdi = (await pool.conn.call('VDI.get_record', diskVbds[0]!.VDI)) as XapiRecord
    assert.deepEqual(Object.keys(vdi.other_config as object).filter(key => key.startsWith('xo:')), [])
    assert.equal(await diskDigest(pool, diskVbds[0]!.VDI as string), backup.diskDigest, 'the restored disk holds the snapshot\'s bytes')
    const vifs = await Promise.all((vm.VIFs as string[]).map(async ref => (await pool.conn.call('VIF.get_record', ref)) as XapiRecord))
    assert.equal(vifs.length, 1)
    const originalVif = source.conn.byRef((options.sourceVm.VIFs as string[])[0]!)!
    const originalMac = originalVif.MAC
    if (options.macs === 'kept') assert.equal(vifs[0]!.MAC, originalMac)
    else assert.notEqual(vifs[0]!.MAC, originalMac, 'a restore next to the original gets new MACs')
    const network = pool.conn.byRef(vifs[0]!.network as string)
    assert.equal(network?.name_label, source.conn.byRef(originalVif.network as string)!.name_label, 'the VIF is on the target pool\'s network of the same name')
    const transfers = events.filter(event => event.type === 'start' && event.properties.name === 'transfer')
    assert.ok(transfers.length >= 1, 'the restore has at least one transfer task')
    const ends = events.filter(event => event.type === 'end' && transfers.some(start => start.id === event.id))
    assert.ok(ends.every(end => end.type === 'end' && end.status === 'success' && (end.result as { size: number }).size > 0), 'every transfer of the restore ends in success with a size above 0')
  } finally {
    await destroyVmAndDisks(pool.conn, vmRef)
  }
}

describe('full backups', () => {
  test('an uncompressed and a zstd XVA restore to the same pool with the snapshot\'s bytes', async () => {
    const vm = liveVm('tiny-halted')
    for (const compression of [undefined, 'zstd'] as const) {
      const backup = await backupFull(vm, compression)
      // An XVA import keeps the archive's MACs, as XAPI and XO do.
      await restoreAndCompare(source, backup, { sourceVm: vm, macs: 'kept' })
    }
  })

  test('a damaged or missing XVA fails with RESTORE_BROKEN_BACKUP and leaves nothing on the pool', async () => {
    const vm = liveVm('tiny-halted')
    const backup = await backupFull(vm)
    const xva = (await handler.list(`xo-vm-backups/${vm.uuid}`)).filter(name => name.endsWith('.xva')).at(-1)!
    const before = await poolContents(source)
    await handler.writeFile(`xo-vm-backups/${vm.uuid}/${xva}`, Buffer.alloc(4096, 0x41))
    await assert.rejects(restoreBackup(handler, backup.id, source.conn, source.srUuid), (error: unknown) => errorCode(error) === 'RESTORE_BROKEN_BACKUP')
    await handler.unlink(`xo-vm-backups/${vm.uuid}/${xva}`)
    await assert.rejects(restoreBackup(handler, backup.id, source.conn, source.srUuid), (error: unknown) => errorCode(error) === 'RESTORE_BROKEN_BACKUP')
    assert.deepEqual(await poolContents(source), before)
  })
})

describe('delta chains', () => {
  let vm: XapiRecord
  let chain: BuiltBackup[]
  before(async () => {
    vm = liveVm('tiny-running')
    chain = await backupDeltaChain(vm, 3)
  })

  test('each point of a chain of 3 (full + 2 deltas with guest writes between) restores the snapshot\'s bytes', async () => {
    assert.equal(new Set(chain.map(point => point.diskDigest)).size, 3, 'the guest writes changed the disk between backups')
    for (const point of chain) await restoreAndCompare(source, point, { sourceVm: vm, macs: 'new' })
  })

  test('a restore to another pool (the pair fixture\'s dr pool) rebuilds the VM on its SR and network', async () => {
    await restoreAndCompare(target, chain.at(-1)!, { sourceVm: vm, macs: 'kept' })
  })

  test('a missing VHD in the chain fails with RESTORE_BROKEN_BACKUP before anything is created', async () => {
    const live = vmDisks(source.conn, vm)[0]!
    const dir = `xo-vm-backups/${vm.uuid}/vdis/${JOB}/${live.vdi.uuid}`
    const [, middle] = await handler.list(dir)
    const before = await poolContents(source)
    await handler.rename(`${dir}/${middle}`, `${dir}/${middle}.away`)
    try {
      await assert.rejects(restoreBackup(handler, chain[2]!.id, source.conn, source.srUuid), (error: unknown) => {
        assert.equal(errorCode(error), 'RESTORE_BROKEN_BACKUP')
        assert.match((error as Error).message, /parent/)
        return true
      })
      assert.deepEqual(await poolContents(source), before)
    } finally {
      await handler.rename(`${dir}/${middle}.away`, `${dir}/${middle}`)
    }
  })
})

/** The remote, slowed down: each read of the data waits, so a cancel lands in the middle of the upload. */
function slowRemote(inner: LocalHandler, delayMs: number): RemoteHandler {
  const wait = () => new Promise(resolve => setTimeout(resolve, delayMs))
  const slowed: Partial<RemoteHandler> = {
    async createReadStream(path: string, range?: { start?: number; end?: number }) {
      const stream = await inner.createReadStream(path, range)
      // 64 KiB pieces, each delayed: the pace does not depend on the chunk size the remote reads with.
      return stream.pipe(
        new Transform({
          highWaterMark: 64 * 1024,
          transform(chunk: Buffer, _encoding, callback) {
            void (async () => {
              for (let offset = 0; offset < chunk.length; offset += 64 * 1024) {
                await wait()
                this.push(chunk.subarray(offset, offset + 64 * 1024))
              }
            })().then(() => callback(), callback)
          },
        }),
      )
    },
    async openFile(path: string, mode: 'r' | 'r+') {
      const file = await inner.openFile(path, mode)
      return {
        read: async (buffer: Buffer, position: number) => (await wait(), file.read(buffer, position)),
        write: (buffer: Buffer, position: number) => file.write(buffer, position),
        size: () => file.size(),
        truncate: (size: number) => file.truncate(size),
        close: () => file.close(),
      }
    },
  }
  return new Proxy(inner, {
    get(target, property: keyof RemoteHandler) {
      const value = slowed[property] ?? target[property]
      return typeof value === 'function' ? value.bind(property in slowed ? slowed : target) : value
    },
  })
}

describe('cancel', () => {
  test('aborting mid-upload (full, then delta) throws the abort and leaves nothing on the pool', async () => {
    const full = await backupFull(liveVm('tiny-halted'))
    const [delta] = await backupDeltaChain(liveVm('tiny-halted'), 1)
    for (const point of [full, delta!]) {
      const before = await poolContents(source)
      const controller = new AbortController()
      const task = TaskLog.start({ name: 'restore' }, {
        onEvent: event => {
          // Cancel once bytes are on their way: the VM and its disk exist on the pool by then.
          if (event.type === 'start' && event.properties.name === 'transfer') setTimeout(() => controller.abort(), point === full ? 150 : 10)
        },
      })
      const started = Date.now()
      await assert.rejects(restoreBackup(slowRemote(handler, point === full ? 20 : 200), point.id, source.conn, source.srUuid, { task, signal: controller.signal }),
        (error: unknown) => errorCode(error) === 'CANCELLED')
      assert.ok(Date.now() - started < 20_000, 'the cancel stops the upload rather than waiting for it')
      const transfers = task.log.events.filter(event => event.type === 'end' && event.status === 'cancelled')
      assert.equal(transfers.length, 1, 'the transfer task is logged cancelled')
      assert.deepEqual(await settledContents(source, before), before)
    }
  })

  test('a cancelled restore run is recorded cancelled at every level, with the coded reason', async () => {
    const points = [{ point: await backupFull(liveVm('tiny-halted')), delayMs: 20 }, { point: (await backupDeltaChain(liveVm('tiny-halted'), 1))[0]!, delayMs: 200 }]
    for (const { point, delayMs } of points) {
      const before = await poolContents(source)
      const context = { pools: new Map([[source.conn.poolUuid, source.conn]]), remotes: new Map([['slow', slowRemote(handler, delayMs)]]) }
      let cancel = (): void => {}
      const run = startRestoreRun(context, { remote: 'slow', backupId: point.id, srUuid: source.srUuid }, {
        onEvent: event => {
          if (event.type === 'start' && event.properties.name === 'transfer') setTimeout(() => cancel(), 100)
        },
      })
      cancel = () => run.cancel()
      const tree = await run.done
      const all = [tree, ...(tree.tasks ?? []).flatMap(function walk(t): TaskNode[] { return [t, ...(t.tasks ?? []).flatMap(walk)] })]
      assert.equal(tree.status, 'cancelled', JSON.stringify(tree))
      assert.deepEqual(all.filter(t => t.status !== 'success' && t.status !== 'cancelled').map(t => [t.message, t.status]), [])
      assert.ok(all.some(t => t.message === 'transfer' && t.status === 'cancelled'), 'the transfer is cancelled')
      assert.doesNotMatch(JSON.stringify(tree), /ABORT_ERR|The operation was aborted/)
      assert.equal((tree.result as { code: string }).code, 'CANCELLED')
      assert.deepEqual(await settledContents(source, before), before)
    }
  })
})
