import { test } from 'node:test'
import assert from 'node:assert/strict'
import { gunzipSync, gzipSync } from 'node:zlib'
import fc from 'fast-check'
import { openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import {
  allocateBackupDate,
  backupId,
  commitBackup,
  deleteBackups,
  formatFilenameDate,
  formatOtherConfigDate,
  listRestorePoints,
  listVmBackups,
  parseBackupDate,
  parseBackupMetadata,
  resolveInVmDir,
  uniqueBackupTimestamp,
  vhdRef,
  vmDir,
  writeBackupMetadata,
  xvaRef,
  type BackupMetadata,
} from '../../source/repository/index.ts'
import { tempDir } from '../helpers/tools.ts'

const VM = '0b3e6a9c-1111-4a2b-8c3d-000000000001'
const JOB = '59af07fc-2222-4a2b-8c3d-000000000002'
const SCHEDULE = '1c7cfc78-3333-4a2b-8c3d-000000000003'
const VDI = 'aaaaaaaa-4444-4a2b-8c3d-000000000004'

async function withRemote(fn: (handler: RemoteHandler) => Promise<void>): Promise<void> {
  const dir = await tempDir('lifeboat-repo-')
  try {
    const handler = openRemote(`file://${dir.path}`)
    await handler.sync()
    await fn(handler)
  } finally {
    await dir.cleanup()
  }
}

const vmRecord = { uuid: VM, name_label: 'db', tags: ['prod'], other_config: {}, is_a_template: false, power_state: 'Running' }

function fullMetadata(timestamp: number): BackupMetadata {
  const date = formatFilenameDate(timestamp)
  return { version: '2.0.0', jobId: JOB, scheduleId: SCHEDULE, mode: 'full', timestamp, vm: vmRecord, vmSnapshot: { ...vmRecord, uuid: 'snap-1', is_a_snapshot: true }, xva: xvaRef(date) }
}

function deltaMetadata(timestamp: number): BackupMetadata {
  const date = formatFilenameDate(timestamp)
  return {
    version: '2.0.0',
    jobId: JOB,
    scheduleId: SCHEDULE,
    mode: 'delta',
    timestamp,
    vm: vmRecord,
    vmSnapshot: { ...vmRecord, uuid: 'snap-2', is_a_snapshot: true },
    vdis: { 'OpaqueRef:vdi1': { uuid: 'snapvdi-1', $snapshot_of$uuid: VDI, $SR$uuid: 'sr-1', other_config: {}, read_only: false } },
    vbds: { 'OpaqueRef:vbd1': { VDI: 'OpaqueRef:vdi1', bootable: true, userdevice: '0' } },
    vifs: { 'OpaqueRef:vif1': { device: '0', MAC: 'aa:bb', $network$uuid: 'net-1', $network$name_label: 'LAN', $network$VLAN: -1 } },
    vtpms: [],
    vhds: { 'OpaqueRef:vdi1': vhdRef(JOB, VDI, date) },
    isVhdDifferencing: { 'OpaqueRef:vdi1': false },
  }
}

async function* bytes(n: number): AsyncGenerator<Buffer> {
  yield Buffer.alloc(n, 1)
}

test('dates: file names are UTC YYYYMMDDTHHmmssZ, other_config has colons, both (and legacy without Z) are read', () => {
  const t = Date.UTC(2026, 2, 15, 2, 0, 7, 450)
  assert.equal(formatFilenameDate(t), '20260315T020007Z')
  assert.equal(formatOtherConfigDate(t), '20260315T02:00:07Z')
  assert.equal(parseBackupDate('20260315T020007Z'), Date.UTC(2026, 2, 15, 2, 0, 7))
  assert.equal(parseBackupDate('20260315T020007'), Date.UTC(2026, 2, 15, 2, 0, 7))
  assert.equal(parseBackupDate('20260315T02:00:07Z'), Date.UTC(2026, 2, 15, 2, 0, 7))
  for (const bad of ['20261315T020007Z', '2026031T020007Z', '20260315T250000Z', 'x', '']) assert.equal(parseBackupDate(bad), undefined, bad)
  fc.assert(fc.property(fc.integer({ min: 0, max: 4e12 }), ms => assert.equal(parseBackupDate(formatFilenameDate(ms)), Math.floor(ms / 1000) * 1000)))
})

test('dates: two backups in the same second get distinct names', async () => {
  const t = Date.UTC(2026, 0, 1, 0, 0, 0, 900)
  assert.equal(uniqueBackupTimestamp(t, []), Date.UTC(2026, 0, 1))
  assert.equal(uniqueBackupTimestamp(t, ['20260101T000000Z', '20260101T000001Z']), Date.UTC(2026, 0, 1, 0, 0, 2))
  await withRemote(async h => {
    await h.writeFile(`${vmDir(VM)}/20260101T000000.json`, '{}') // legacy name without Z
    assert.deepEqual(await allocateBackupDate(h, VM, t), { timestamp: Date.UTC(2026, 0, 1, 0, 0, 1), date: '20260101T000001Z' })
  })
})

test('layout: XO paths, and metadata references cannot leave the VM folder', () => {
  assert.equal(vmDir(VM), `xo-vm-backups/${VM}`)
  assert.equal(backupId(VM, '20260101T000000Z'), `/xo-vm-backups/${VM}/20260101T000000Z.json`)
  assert.equal(vhdRef(JOB, VDI, '20260101T000000Z'), `vdis/${JOB}/${VDI}/20260101T000000Z.vhd`)
  assert.equal(resolveInVmDir(VM, './20260101T000000Z.xva'), `xo-vm-backups/${VM}/20260101T000000Z.xva`)
  assert.throws(() => resolveInVmDir(VM, '../other/x.vhd'), { code: 'REPOSITORY_BAD_REFERENCE' })
  assert.throws(() => vmDir('../etc'), { code: 'REPOSITORY_BAD_NAME' })
  assert.throws(() => vhdRef('a/b', VDI, 'd'), { code: 'REPOSITORY_BAD_NAME' })
})

test("metadata: Lifeboat writes exactly XO's field names (reference §2), and reads them back", async () => {
  await withRemote(async h => {
    const t = Date.UTC(2026, 2, 15, 2)
    const full = await commitBackup(h, fullMetadata(t), [{ ref: xvaRef('20260315T020000Z'), source: bytes(3000) }])
    const delta = await commitBackup(h, deltaMetadata(t + 1000), [{ ref: vhdRef(JOB, VDI, '20260315T020001Z'), source: bytes(5000) }])
    const fullJson = JSON.parse((await h.readFile(`${vmDir(VM)}/20260315T020000Z.json`)).toString())
    const deltaJson = JSON.parse((await h.readFile(`${vmDir(VM)}/20260315T020001Z.json`)).toString())
    const common = ['jobId', 'mode', 'scheduleId', 'size', 'timestamp', 'version', 'vm', 'vmSnapshot']
    assert.deepEqual(Object.keys(fullJson).sort(), [...common, 'xva'].sort())
    assert.deepEqual(Object.keys(deltaJson).sort(), [...common, 'isVhdDifferencing', 'vbds', 'vdis', 'vhds', 'vifs', 'vtpms'].sort())
    assert.equal(fullJson.version, '2.0.0')
    assert.equal(fullJson.xva, './20260315T020000Z.xva')
    assert.equal(fullJson.size, 3000)
    assert.equal(deltaJson.size, 5000)
    assert.equal(deltaJson.vhds['OpaqueRef:vdi1'], `vdis/${JOB}/${VDI}/20260315T020001Z.vhd`)
    assert.equal(deltaJson.vdis['OpaqueRef:vdi1'].$snapshot_of$uuid, VDI)
    assert.equal(full._filename, `/xo-vm-backups/${VM}/20260315T020000Z.json`)
    assert.equal(delta.id, delta._filename)
    assert.deepEqual((await h.stat(`${vmDir(VM)}/vdis/${JOB}/${VDI}/20260315T020001Z.vhd`)).size, 5000)
    // Round trip: what we wrote parses to what we meant.
    assert.deepEqual(parseBackupMetadata(JSON.stringify(deltaJson), 'x'), { ...deltaMetadata(t + 1000), size: 5000 })
  })
})

test('metadata: XenServer < 7.1 integer booleans and unknown XO fields are read tolerantly', () => {
  const old: Record<string, unknown> = { ...deltaMetadata(1000), vm: { ...vmRecord, is_a_template: 0 }, isVhdDifferencing: { 'OpaqueRef:vdi1': 1 }, includeNonNbdQcow2Fix: true }
  old.vbds = { 'OpaqueRef:vbd1': { VDI: 'OpaqueRef:vdi1', bootable: 1, userdevice: '0' } }
  const parsed = parseBackupMetadata(JSON.stringify(old), 'old.json')
  assert.equal(parsed.vm.is_a_template, false)
  assert.ok(parsed.mode === 'delta', 'the parsed backup is a delta')
  assert.deepEqual(parsed.isVhdDifferencing, { 'OpaqueRef:vdi1': true })
  assert.equal(parsed.vbds['OpaqueRef:vbd1']!.bootable, true)
  assert.equal((parsed as Record<string, unknown>).includeNonNbdQcow2Fix, true)
  assert.throws(() => parseBackupMetadata('{', 'bad.json'), { code: 'REPOSITORY_BAD_METADATA' })
  assert.throws(() => parseBackupMetadata(JSON.stringify({ ...fullMetadata(1), mode: 'mirror' }), 'bad.json'), { code: 'REPOSITORY_BAD_METADATA' })
  assert.throws(() => parseBackupMetadata(JSON.stringify({ ...fullMetadata(1), xva: undefined }), 'bad.json'), /xva/)
})

test('metadata: writing refuses metadata XO could not restore', async () => {
  await withRemote(async h => {
    await assert.rejects(writeBackupMetadata(h, { ...fullMetadata(1000), version: '1.0.0', size: 1 }), { code: 'REPOSITORY_BAD_METADATA' })
    await assert.rejects(writeBackupMetadata(h, { ...fullMetadata(1000) }), /size/)
  })
})

test('commit order: a failing data write leaves no metadata, hence no backup', async () => {
  await withRemote(async h => {
    async function* cut() {
      yield Buffer.alloc(100)
      throw new Error('export cut short')
    }
    await assert.rejects(commitBackup(h, fullMetadata(Date.UTC(2026, 0, 1)), [{ ref: xvaRef('20260101T000000Z'), source: cut() }]), /cut short/)
    assert.deepEqual(await h.list(vmDir(VM)), [])
    assert.deepEqual(await listVmBackups(h, VM), [])
  })
})

test('cache.json.gz: XO shape, patched on write and delete, regenerated when missing or unreadable', async () => {
  await withRemote(async h => {
    const cacheFile = `${vmDir(VM)}/cache.json.gz`
    const times = [Date.UTC(2026, 0, 1), Date.UTC(2026, 0, 2), Date.UTC(2026, 0, 3)]
    await commitBackup(h, fullMetadata(times[0]!), [{ ref: xvaRef(formatFilenameDate(times[0]!)), source: bytes(10) }])
    // No cache yet: writes do not create one (as XO); the first listing does.
    await assert.rejects(h.stat(cacheFile), { code: 'ENOENT' })
    assert.equal((await listVmBackups(h, VM)).length, 1)
    const cache = JSON.parse(gunzipSync(await h.readFile(cacheFile)).toString())
    const key = `/xo-vm-backups/${VM}/20260101T000000Z.json`
    assert.deepEqual(Object.keys(cache), [key])
    assert.equal(cache[key]._filename, key)
    assert.equal(cache[key].id, key)
    assert.equal(cache[key].xva, './20260101T000000Z.xva')

    await commitBackup(h, deltaMetadata(times[1]!), [{ ref: vhdRef(JOB, VDI, formatFilenameDate(times[1]!)), source: bytes(10) }])
    await commitBackup(h, deltaMetadata(times[2]!), [{ ref: vhdRef(JOB, VDI, formatFilenameDate(times[2]!)), source: bytes(10) }])
    assert.equal(Object.keys(JSON.parse(gunzipSync(await h.readFile(cacheFile)).toString())).length, 3)

    // The cache is what listing uses: a JSON removed behind its back still shows until it is regenerated.
    await h.unlink(`${vmDir(VM)}/20260103T000000Z.json`)
    assert.equal((await listVmBackups(h, VM)).length, 3)
    await h.writeFile(cacheFile, 'not gzip')
    assert.deepEqual((await listVmBackups(h, VM)).map(b => b.timestamp), [times[0], times[1]])
    await h.writeFile(cacheFile, gzipSync('{"/x": {"mode": "weird"}}'))
    assert.equal((await listVmBackups(h, VM)).length, 2)
    await h.unlink(cacheFile)
    // An unreadable JSON is left out with a warning, not fatal.
    await h.writeFile(`${vmDir(VM)}/20260104T000000Z.json`, '{ broken')
    const warnings: string[] = []
    assert.equal((await listVmBackups(h, VM, { warn: (m, d) => warnings.push(`${m} ${String(d.file)}`) })).length, 2)
    assert.equal(warnings.length, 1)
    assert.match(warnings[0]!, /20260104T000000Z\.json/)
  })
})

test('deleteBackups: JSON (and XVA for a full) removed, cache patched; delta VHDs left for the merge', async () => {
  await withRemote(async h => {
    const t1 = Date.UTC(2026, 0, 1)
    const t2 = Date.UTC(2026, 0, 2)
    await commitBackup(h, fullMetadata(t1), [{ ref: xvaRef(formatFilenameDate(t1)), source: bytes(10) }])
    await h.writeFile(`${vmDir(VM)}/${formatFilenameDate(t1)}.xva.checksum`, '$1$$abc')
    await commitBackup(h, deltaMetadata(t2), [{ ref: vhdRef(JOB, VDI, formatFilenameDate(t2)), source: bytes(10) }])
    const backups = await listVmBackups(h, VM)
    await deleteBackups(h, backups)
    assert.deepEqual(await listVmBackups(h, VM), [])
    const left = await h.list(vmDir(VM))
    assert.deepEqual(left, ['cache.json.gz', 'vdis'])
    assert.deepEqual(await h.list(`${vmDir(VM)}/vdis/${JOB}/${VDI}`), ['20260102T000000Z.vhd'])
    // Deleting again is harmless.
    await deleteBackups(h, backups)
  })
})

test('restore points: per VM, date, mode, size, job, schedule and file name', async () => {
  await withRemote(async h => {
    const other = '0b3e6a9c-1111-4a2b-8c3d-000000000099'
    const t = Date.UTC(2026, 4, 1, 3)
    await commitBackup(h, fullMetadata(t), [{ ref: xvaRef(formatFilenameDate(t)), source: bytes(42) }])
    await commitBackup(h, { ...deltaMetadata(t), vm: { ...vmRecord, uuid: other, name_label: 'web' } }, [{ ref: vhdRef(JOB, VDI, formatFilenameDate(t)), source: bytes(7) }])
    await h.lock(vmDir(VM)).then(l => l.release())
    await h.mkdir('xo-vm-backups/.queue/clean-vm')
    const points = await listRestorePoints(h)
    assert.deepEqual(
      points.map(p => [p.vmUuid, p.vmName, p.date, p.mode, p.size, p.jobId, p.scheduleId, p.filename]),
      [
        [VM, 'db', '20260501T030000Z', 'full', 42, JOB, SCHEDULE, `/xo-vm-backups/${VM}/20260501T030000Z.json`],
        [other, 'web', '20260501T030000Z', 'delta', 7, JOB, SCHEDULE, `/xo-vm-backups/${other}/20260501T030000Z.json`],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    )
    assert.deepEqual((await listRestorePoints(h, { vmUuid: other })).length, 1)
  })
})
