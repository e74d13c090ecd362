// XO's cr-seed: a snapshot of the source VM, exported and imported by hand onto the job's SR, becomes the
// base of the job's continuous replication, so that its next run sends only the blocks changed since. The
// snapshot is marked as the job's exported base (what selectBase picks) and the imported VM as a complete
// replica of it (replicas.ts's contract: what the CR target chains its next delta onto).
import { LifeboatError } from '../../util/errors.ts'
import { formatBytes } from '../../util/human.ts'
import { formatOtherConfigDate, parseBackupDate } from '../../repository/index.ts'
import { removeOtherConfigKeys, setOtherConfigKey, vmDisks, type PoolConnection, type XapiRecord } from '../../xapi/index.ts'
import type { CrSeedResult } from '../../protocol/methods.ts'
import { selectVms, vmCandidate, type Job, type Schedule } from '../jobs/index.ts'
import { KEY } from '../run/snapshots.ts'
import { blockReplicaStart, CR_TAG, disableReplicaHa, markReplicaComplete, replicaName } from '../targets/replicas.ts'

export interface CrSeedRequest {
  job: Job & { id: string }
  schedule: Schedule & { id: string }
  /** The source VM: uuid or unique name. */
  vm: string
  snapshotUuid: string
  targetVmUuid: string
}

const isVm = (record: XapiRecord | undefined): record is XapiRecord => record !== undefined && record.$type === 'VM'
const config = (record: XapiRecord) => (record.other_config as Record<string, string> | undefined) ?? {}
const isPlainVm = (record: XapiRecord) => record.is_a_snapshot !== true && record.is_a_template !== true && record.is_control_domain !== true

/** Checks that the snapshot and the target VM fit the job, then marks them; nothing is marked when a check fails. */
export async function crSeed(pools: ReadonlyMap<string, PoolConnection>, request: CrSeedRequest): Promise<CrSeedResult> {
  const { job, schedule } = request
  if (job.mode !== 'delta') throw new LifeboatError('CR_SEED_NOT_DELTA', `The job "${job.name}" is in full mode (disaster recovery: every run sends a whole copy); a seed is the base of a continuous replication, a job in delta mode with SRs.`)
  if (job.srs.length === 0) throw new LifeboatError('CR_SEED_NO_SR', `The job "${job.name}" replicates to no SR; add the SR the seed VM was imported on to its "srs", then run cr-seed again.`)

  const { conn, vm } = findSourceVm(pools, request.vm)
  const selection = selectVms(job.vms, [vmCandidate(vm, conn.poolUuid)], job.id)
  if (!selection.selected.includes(vm.uuid)) {
    const excluded = selection.excluded[0]?.reason
    throw new LifeboatError('CR_SEED_VM_NOT_IN_JOB', `The job "${job.name}" does not back up the VM "${vm.name_label}" (${vm.uuid})${excluded === undefined ? '' : `: ${excluded}`}; ${'uuids' in job.vms ? "add it to the job's VMs" : "change the job's smart selection"} first.`)
  }

  const snapshot = conn.byUuid(request.snapshotUuid)
  if (!isVm(snapshot) || snapshot.is_a_snapshot !== true || snapshot.snapshot_of !== vm.$ref) {
    const what = !isVm(snapshot) ? `there is no VM snapshot with the uuid ${request.snapshotUuid} on the pool "${conn.poolName}"` : snapshot.is_a_snapshot !== true ? `${request.snapshotUuid} is a VM, not a snapshot` : `${request.snapshotUuid} is a snapshot of another VM`
    throw new LifeboatError('CR_SEED_NOT_A_SNAPSHOT', `The seed must be a snapshot of the VM "${vm.name_label}": ${what}. Its snapshots are listed by 'xe snapshot-list snapshot-of=${vm.uuid}'.`)
  }
  const timestamp = snapshotTime(snapshot)

  const target = findTargetVm(pools, request.targetVmUuid, vm)
  const sourceDisks = disksByPosition(conn, snapshot)
  const targetDisks = disksByPosition(target.conn, target.vm)
  const differences = diskDifferences(sourceDisks, targetDisks)
  if (differences.length > 0) {
    throw new LifeboatError('CR_SEED_DISKS_DIFFER', `The target VM's disks do not match the snapshot's: ${differences.join('; ')}. Import this very snapshot onto the SR (export it as an XVA, import that), then run cr-seed again.`)
  }
  const srRefs = new Set([...targetDisks.values()].map(vdi => String(vdi.SR)))
  const srs = [...srRefs].map(ref => target.conn.byRef(ref)).filter(sr => sr !== undefined)
  if (srs.length !== 1 || !job.srs.includes(srs[0]!.uuid)) {
    const where = srs.map(sr => `"${sr.name_label}" (${sr.uuid})`).join(', ')
    throw new LifeboatError('CR_SEED_WRONG_SR', `The target VM's disks are on ${where}, ${srs.length > 1 ? 'several SRs' : 'not an SR of the job'}; a replica of the job "${job.name}" is on one of its SRs (${job.srs.join(', ')}). Move the disks there, or add that SR to the job.`)
  }
  const sr = srs[0]!

  // The replica's completion key last: a seed cut midway leaves no complete replica, and the next run goes full.
  const disks = [...sourceDisks].map(([userdevice, vdi]) => ({ userdevice, size: Number(vdi.virtual_size), snapshotVdi: vdi.uuid, targetVdi: targetDisks.get(userdevice)!.uuid }))
  for (const [userdevice, vdi] of targetDisks) await setOtherConfigKey(target.conn, 'VDI', vdi.$ref, KEY.copyOf, sourceDisks.get(userdevice)!.uuid)
  await markBase(conn, snapshot, [...sourceDisks.values()], { job, schedule, vmUuid: vm.uuid, timestamp })
  if (target.vm.is_a_template === true) await target.conn.call('VM.set_is_a_template', target.vm.$ref, false)
  const name = replicaName(String(vm.name_label ?? ''), job.name, timestamp)
  await target.conn.call('VM.set_name_label', target.vm.$ref, name)
  await target.conn.call('VM.add_tags', target.vm.$ref, CR_TAG)
  await disableReplicaHa(target.conn, target.vm.$ref)
  await blockReplicaStart(target.conn, target.vm.$ref)
  await setOtherConfigKey(target.conn, 'VM', target.vm.$ref, KEY.copyOf, snapshot.uuid)
  await markReplicaComplete(target.conn, target.vm.$ref, { jobId: job.id, scheduleId: schedule.id, vmUuid: vm.uuid, srUuid: sr.uuid, timestamp })
  return { jobId: job.id, scheduleId: schedule.id, vmUuid: vm.uuid, snapshotUuid: snapshot.uuid, targetVmUuid: target.vm.uuid, targetVmName: name, srUuid: sr.uuid, poolId: target.conn.poolUuid, disks }
}

function findSourceVm(pools: ReadonlyMap<string, PoolConnection>, uuidOrName: string): { conn: PoolConnection; vm: XapiRecord } {
  const found: Array<{ conn: PoolConnection; vm: XapiRecord }> = []
  for (const conn of pools.values()) {
    const byUuid = conn.byUuid(uuidOrName)
    if (isVm(byUuid) && isPlainVm(byUuid)) return { conn, vm: byUuid }
    for (const vm of conn.all('VM')) if (isPlainVm(vm) && vm.name_label === uuidOrName) found.push({ conn, vm })
  }
  if (found.length === 1) return found[0]!
  if (found.length > 1) throw new LifeboatError('VM_AMBIGUOUS', `Several VMs are named "${uuidOrName}": ${found.map(f => f.vm.uuid).join(', ')}; give the uuid of one ('npx lifeboat vm list').`)
  throw new LifeboatError('VM_NOT_FOUND', `No VM of a connected pool has the uuid or name "${uuidOrName}"; 'npx lifeboat vm list' shows them.`)
}

function findTargetVm(pools: ReadonlyMap<string, PoolConnection>, uuid: string, source: XapiRecord): { conn: PoolConnection; vm: XapiRecord } {
  for (const conn of pools.values()) {
    const vm = conn.byUuid(uuid)
    if (!isVm(vm)) continue
    // An imported snapshot XVA comes in as a template (XAPI's snapshots are templates); a default template is not a copy.
    if (vm.is_a_snapshot === true || vm.is_control_domain === true || config(vm).default_template === 'true') throw new LifeboatError('CR_SEED_TARGET_INVALID', `The target ${uuid} is a snapshot or a built-in template; give the uuid of the VM imported on the SR.`)
    if (vm.uuid === source.uuid) throw new LifeboatError('CR_SEED_TARGET_INVALID', 'The target VM is the source VM itself; give the uuid of the copy imported on the SR.')
    // A started copy has diverged from the snapshot: its disks are no longer a base.
    if (vm.power_state !== 'Halted') throw new LifeboatError('CR_SEED_TARGET_INVALID', `The target VM "${vm.name_label}" is ${String(vm.power_state).toLowerCase()}; a seed must never have been started since its import. Import the snapshot again, leave it halted, and run cr-seed again.`)
    return { conn, vm }
  }
  throw new LifeboatError('CR_SEED_TARGET_NOT_FOUND', `No VM of a connected pool has the uuid ${uuid}; give the uuid of the VM imported on the SR ('npx lifeboat vm list --pool POOL').`)
}

/** The snapshot's own time (XAPI's snapshot_time), to the second: the replica's and the base's date. */
function snapshotTime(snapshot: XapiRecord): number {
  const value = snapshot.snapshot_time as unknown
  const time = value instanceof Date ? value.getTime() : parseBackupDate(String(value ?? ''))
  if (time === undefined || Number.isNaN(time) || time <= 0) throw new LifeboatError('CR_SEED_NO_SNAPSHOT_TIME', `The snapshot ${snapshot.uuid} has no snapshot time (${String(value)}); take a new snapshot of the VM and seed from it.`)
  return Math.floor(time / 1000) * 1000
}

function disksByPosition(conn: PoolConnection, vm: XapiRecord): Map<string, XapiRecord> {
  return new Map(vmDisks(conn, vm).map(({ vbd, vdi }) => [String(vbd.userdevice), vdi]))
}

/** One phrase per position where the two VMs' disks differ (a missing disk, or another size). */
function diskDifferences(source: Map<string, XapiRecord>, target: Map<string, XapiRecord>): string[] {
  const positions = [...new Set([...source.keys(), ...target.keys()])].sort((a, b) => Number(a) - Number(b))
  const size = (vdi: XapiRecord) => `${formatBytes(Number(vdi.virtual_size))} (${Number(vdi.virtual_size)} bytes)`
  const differences: string[] = []
  for (const position of positions) {
    const [ours, theirs] = [source.get(position), target.get(position)]
    if (theirs === undefined) differences.push(`disk ${position}: the snapshot has one of ${size(ours!)}, the target VM none`)
    else if (ours === undefined) differences.push(`disk ${position}: the target VM has one of ${size(theirs)}, the snapshot none`)
    else if (Number(ours.virtual_size) !== Number(theirs.virtual_size)) differences.push(`disk ${position}: ${size(ours)} on the snapshot, ${size(theirs)} on the target VM`)
  }
  return differences
}

/** The snapshot as a run of this job leaves it once exported (vm-backup's marks), on the VM and its disks. */
async function markBase(conn: PoolConnection, snapshot: XapiRecord, vdis: XapiRecord[], base: { job: Job & { id: string }; schedule: Schedule & { id: string }; vmUuid: string; timestamp: number }): Promise<void> {
  // A snapshot copies the VM's other_config: keys of a replica or of an older chain would make it someone else's.
  const foreign = [KEY.copyOf, KEY.contentKey, KEY.baseDeltaVdi]
  const marks: Array<[string, string]> = [
    [KEY.job, base.job.id],
    [KEY.schedule, base.schedule.id],
    [KEY.vm, base.vmUuid],
    [KEY.datetime, formatOtherConfigDate(base.timestamp)],
    [KEY.deltaChainLength, '0'],
    [KEY.exported, 'true'],
  ]
  for (const [type, record] of [['VM', snapshot] as const, ...vdis.map(vdi => ['VDI', vdi] as const)]) {
    await removeOtherConfigKeys(conn, type, record.$ref, foreign)
    for (const [key, value] of marks) await setOtherConfigKey(conn, type, record.$ref, key, value)
  }
}
