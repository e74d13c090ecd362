// A live VM of a connected pool as the source of a backup (XO's _AbstractXapi, FullXapi and IncrementalXapi):
// its migration blocked for the backup, a snapshot (offline or with memory when asked) marked with XO's keys,
// exported over XAPI's HTTP handlers as an XVA or as one VHD stream per disk, marked exported once a target
// has it, and the job's snapshots kept to the schedule's retention.
import { LifeboatError, errorCode } from '../../util/errors.ts'
import { withTimeout } from '../../util/abort.ts'
import { openVhdStream, vhdStreamLength } from '../../formats/vhd/index.ts'
import { formatOtherConfigDate } from '../../repository/index.ts'
import {
  blockOperations, destroyVmAndDisks, exportVdiVhd, exportVmXva, networkVlan, NULL_REF, removeOtherConfigKeys, setOtherConfigKey, snapshotVm, TEMPORARY_SNAPSHOT_NAME, vmDisks,
  type ExportStream, type PoolConnection, type SlotHolder, type XapiRecord,
} from '../../xapi/index.ts'
import type { Job, Schedule, Settings } from '../jobs/index.ts'
import { KEY, jobSnapshots, removeOldSnapshots, removeUnexportedSnapshots, selectBase } from '../run/snapshots.ts'
import type { TargetStep } from '../targets/target.ts'
import type { BaseOffer, VmSource } from './source.ts'
import type { DeltaVmExport, DiskBlock, ExportedDisk, FullVmExport, PlainRecord, SourceStream, VmRecords } from './vm-export.ts'

/** A snapshot that takes longer is given up (XAPI's own snapshot can hang on a sick SR). */
const SNAPSHOT_TIMEOUT_MS = 15 * 60_000
const MIGRATION_BLOCKED = 'VM migration is blocked during backup'

export interface XapiSourceOptions {
  conn: PoolConnection
  vmUuid: string
  job: Job & { id: string }
  schedule: Schedule & { id: string }
  /** Resolved for this VM (no target). */
  settings: Settings
  runId: string
  /** True when the backup has no target (a rolling-snapshot job): its snapshots are complete once taken. */
  rolling: boolean
}

export class XapiVmSource implements VmSource {
  readonly vmUuid: string
  readonly #options: XapiSourceOptions
  readonly #holder: SlotHolder
  /** The VM as the run found it (the snapshot reads its disks and VIFs). */
  #vm: XapiRecord
  #liveDisks: XapiRecord[] = []
  #snapshot: XapiRecord | undefined
  #snapshotRef: string | undefined
  #timestamp = 0
  #exported = false
  /** The exported snapshot's delta chain length, once known (XO's xo:backup:deltaChainLength). */
  #baseChainLength = 0
  #restoreOperations: (() => Promise<void>) | undefined

  constructor(options: XapiSourceOptions) {
    this.#options = options
    this.vmUuid = options.vmUuid
    this.#vm = options.conn.get('VM', options.vmUuid)
    this.#holder = { runId: options.runId, jobId: options.job.id, vm: this.vmUuid, vmName: String(this.#vm.name_label), phase: 'snapshot' }
  }

  get #conn(): PoolConnection {
    return this.#options.conn
  }

  async prepare(step: TargetStep): Promise<void> {
    // Snapshots are judged on their other_config: the cache must show what the last run wrote.
    await this.#conn.sync(step.signal)
    this.#vm = this.#conn.get('VM', this.vmUuid)
    this.#liveDisks = vmDisks(this.#conn, this.#vm).map(d => d.vdi)
    if (this.#liveDisks.length === 0) throw new LifeboatError('NO_DISKS', 'no disks found')
    this.#restoreOperations = await blockOperations(this.#conn, this.#vm, { pool_migrate: MIGRATION_BLOCKED, migrate_send: MIGRATION_BLOCKED })
    // The live VM must not carry the keys a manual snapshot would inherit and be taken for the job's.
    const config = (this.#vm.other_config as Record<string, string> | undefined) ?? {}
    await removeOtherConfigKeys(this.#conn, 'VM', this.#vm.$ref, Object.values(KEY).filter(key => key in config))
    const debris = await this.#removeDebris(step.signal)
    if (debris.length > 0) step.task.info('unfinished snapshots of earlier runs removed', { snapshots: debris })
  }

  /** Snapshots of this job that an earlier run left unfinished: unexported ones, or (rolling snapshots) ones never renamed. */
  async #removeDebris(signal: AbortSignal): Promise<string[]> {
    const { conn, job } = { conn: this.#conn, job: this.#options.job }
    if (!this.#options.rolling) return removeUnexportedSnapshots(conn, this.#vm, job.id, signal)
    const removed: string[] = []
    for (const snapshot of jobSnapshots(conn, this.#vm, job.id).filter(s => s.record.name_label === TEMPORARY_SNAPSHOT_NAME)) {
      await destroyVmAndDisks(conn, snapshot.record.$ref, { signal })
      removed.push(snapshot.record.uuid as string)
    }
    return removed
  }

  async offerBases(): Promise<BaseOffer> {
    const { offer, chainLength } = xapiBaseOffer(this.#conn, this.#vm, this.#liveDisks, this.#options.job.id, this.#options.settings)
    this.#baseChainLength = chainLength
    return offer
  }

  async capture(step: TargetStep): Promise<void> {
    const { conn } = { conn: this.#conn }
    const vm = this.#vm
    const { job, schedule, settings } = this.#options
    let restart = false
    if (settings.offlineSnapshot && vm.power_state === 'Running') {
      await conn.callAsync(step.signal, 'VM.clean_shutdown', vm.$ref)
      restart = true
    }
    this.#timestamp = Date.now()
    try {
      await step.task.child('snapshot').run(async () => {
        const bound = withTimeout(step.signal, SNAPSHOT_TIMEOUT_MS, 'the snapshot')
        try {
          const result = await snapshotVm(conn, vm, {
            name: `[XO Backup ${job.name}] ${vm.name_label}`,
            checkpoint: settings.checkpointSnapshot,
            otherConfig: { [KEY.datetime]: formatOtherConfigDate(this.#timestamp), [KEY.job]: job.id, [KEY.schedule]: schedule.id, [KEY.vm]: vm.uuid },
            holder: this.#holder,
            signal: bound.signal,
          })
          this.#snapshotRef = result.ref
          if (result.fallback !== undefined) step.task.warning(result.fallback)
        } finally {
          bound.dispose()
        }
        return conn.byRef(this.#snapshotRef!)?.uuid ?? (await conn.call('VM.get_uuid', this.#snapshotRef))
      })
    } finally {
      if (restart) await conn.callAsync(undefined, 'VM.start', vm.$ref, false, false).catch(error => step.task.warning('the VM was shut down for the snapshot and could not be started again', { error: errorCode(error) }))
    }
    this.#snapshot = await conn.waitFor(() => conn.byRef(this.#snapshotRef!), { signal: step.signal, timeoutMs: 60_000, what: 'the snapshot record' })
  }

  async openFull(step: TargetStep): Promise<{ backup: FullVmExport; xva: SourceStream<Buffer> }> {
    const snapshot = this.#snapshot!
    const { compression } = this.#options.settings
    const expectedSize = this.#snapshotDisks().reduce((sum, vdi) => sum + Number(vdi.virtual_size), 0)
    const source = await exportVmXva(this.#conn, snapshot.$ref, { holder: { ...this.#holder, phase: 'export' }, signal: step.signal, compression: compression === 'none' ? undefined : compression, expectedSize })
    const records: VmRecords = { vm: plainRecord(this.#vm), vmSnapshot: plainRecord(snapshot), vdis: {}, vbds: {}, vifs: {}, vtpms: [] }
    return { backup: { mode: 'full', ...this.#common(records) }, xva: sourceStream(source, source.stream) }
  }

  async openDelta(bases: ReadonlyMap<string, string>, step: TargetStep): Promise<{ backup: DeltaVmExport; disks: Map<string, SourceStream<DiskBlock>> }> {
    const conn = this.#conn
    const snapshot = this.#snapshot!
    const records = this.#deltaRecords(snapshot, bases)
    const toExport: Array<{ vdi: XapiRecord; chainFolder: string; base: XapiRecord | undefined; disk: string }> = []
    for (const vdi of this.#snapshotDisks()) {
      const live = this.#liveDisks.find(d => d.$ref === vdi.snapshot_of)
      if (live === undefined) throw new LifeboatError('SNAPSHOT_DISK_UNKNOWN', `The snapshot disk ${vdi.uuid} is not a snapshot of a disk of the VM; the VM changed during the backup. Run the backup again.`)
      const baseUuid = bases.get(live.uuid)
      toExport.push({ vdi, chainFolder: live.uuid, base: baseUuid === undefined ? undefined : conn.byUuid(baseUuid), disk: String(live.name_label) })
    }
    const suspend = this.#suspendVdi(snapshot)
    if (suspend !== undefined) toExport.push({ vdi: suspend, chainFolder: suspend.uuid, base: undefined, disk: 'memory' })

    const disks: ExportedDisk[] = []
    const streams = new Map<string, SourceStream<DiskBlock>>()
    try {
      await Promise.all(
        toExport.map(async ({ vdi, chainFolder, base, disk }) => {
          const holder = { ...this.#holder, phase: 'export', disk }
          const source = await exportVdiVhd(conn, vdi.$ref, { holder, signal: step.signal, baseRef: base?.$ref, expectedSize: Number(vdi.virtual_size) })
          try {
            const reader = await openVhdStream(source.stream)
            source.setExpectedSize(vhdStreamLength(reader.footer.currentSize, reader.blockIndexes.length, { tableOffset: reader.header.tableOffset }))
            disks.push({ ref: vdi.$ref, liveVdiUuid: chainFolder, snapshotVdiUuid: vdi.uuid, baseUuid: base?.uuid as string | undefined, footer: reader.footer, header: reader.header, blockIndexes: reader.blockIndexes })
            streams.set(vdi.$ref, sourceStream(source, reader.blocks()))
          } catch (error) {
            source.stream.destroy()
            throw error
          }
        }),
      )
    } catch (error) {
      for (const stream of streams.values()) stream.close()
      throw error
    }
    const order = new Map(toExport.map(({ vdi }, index) => [vdi.$ref, index]))
    disks.sort((a, b) => order.get(a.ref)! - order.get(b.ref)!)
    const isFull = toExport.some(({ base, vdi }) => base === undefined && vdi !== suspend)
    return { backup: { mode: 'delta', ...this.#common(records), isFull, disks }, disks: streams }
  }

  #common(records: VmRecords): { timestamp: number; jobId: string; scheduleId: string; records: VmRecords } {
    return { timestamp: this.#timestamp, jobId: this.#options.job.id, scheduleId: this.#options.schedule.id, records }
  }

  /** The checkpoint's memory, exported with the disks so that a replica or a restore can resume instead of booting. */
  #suspendVdi(snapshot: XapiRecord): XapiRecord | undefined {
    const ref = snapshot.suspend_VDI as string | undefined
    if (ref === undefined || ref === NULL_REF) return undefined
    return this.#conn.byRef(ref)
  }

  /** The records of XO's delta metadata: vdis keyed by snapshot VDI ref, the VBDs of the snapshot, the VIFs with their network. */
  #deltaRecords(snapshot: XapiRecord, bases: ReadonlyMap<string, string>): VmRecords {
    const conn = this.#conn
    const vdis: Record<string, PlainRecord> = {}
    for (const vdi of this.#snapshotDisks()) {
      const live = this.#liveDisks.find(d => d.$ref === vdi.snapshot_of)
      const baseUuid = live === undefined ? undefined : bases.get(live.uuid)
      vdis[vdi.$ref] = {
        ...plainRecord(vdi),
        $snapshot_of$uuid: live?.uuid,
        $SR$uuid: conn.byRef(vdi.SR as string)?.uuid,
        other_config: { ...(vdi.other_config as Record<string, string>), ...(baseUuid !== undefined && { [KEY.baseDeltaVdi]: baseUuid }) },
      }
    }
    const suspend = this.#suspendVdi(snapshot)
    if (suspend !== undefined) vdis[suspend.$ref] = { ...plainRecord(suspend), $SR$uuid: conn.byRef(suspend.SR as string)?.uuid }
    const vbds: Record<string, Record<string, unknown>> = {}
    for (const vbdRef of snapshot.VBDs as string[]) {
      const vbd = conn.byRef(vbdRef)
      if (vbd !== undefined && vbd.type === 'Disk' && vbd.VDI !== NULL_REF) vbds[vbdRef] = plainRecord(vbd)
    }
    const vifs: Record<string, Record<string, unknown>> = {}
    for (const vifRef of (this.#vm.VIFs as string[]) ?? []) {
      const vif = conn.byRef(vifRef)
      if (vif === undefined) continue
      const network = conn.byRef(vif.network as string)
      vifs[vifRef] = { ...plainRecord(vif), $network$uuid: network?.uuid, $network$name_label: network?.name_label, $network$VLAN: networkVlan(conn, network) }
    }
    return { vm: plainRecord(this.#vm), vmSnapshot: plainRecord(snapshot), vdis, vbds, vifs, vtpms: [] }
  }

  #snapshotDisks(): XapiRecord[] {
    return vmDisks(this.#conn, this.#snapshot!).map(d => d.vdi)
  }

  async complete(backup: FullVmExport | DeltaVmExport): Promise<void> {
    const conn = this.#conn
    const snapshot = this.#snapshot!
    const chainLength = backup.mode === 'full' || backup.isFull ? 0 : this.#baseChainLength + 1
    const marks: Record<string, string> = { [KEY.exported]: 'true', [KEY.deltaChainLength]: String(chainLength) }
    for (const [key, value] of Object.entries(marks)) {
      await setOtherConfigKey(conn, 'VM', snapshot.$ref, key, value)
      for (const vdi of this.#snapshotDisks()) await setOtherConfigKey(conn, 'VDI', vdi.$ref, key, value)
    }
    this.#exported = true
  }

  async afterBackup(step: TargetStep): Promise<void> {
    await this.#conn.sync(step.signal)
    const { job, schedule, settings } = this.#options
    const destroyed = await removeOldSnapshots(this.#conn, this.#conn.get('VM', this.vmUuid), { jobId: job.id, scheduleId: schedule.id, keep: settings.snapshotRetention, mode: job.mode, signal: step.signal })
    if (destroyed.length > 0) step.task.info('old snapshots removed', { snapshots: destroyed })
  }

  /** The run's own snapshot after a failure; the pool may be restarting, so a few tries before leaving it to the next run. */
  async discard(step: TargetStep): Promise<void> {
    if (this.#snapshotRef === undefined || this.#exported) return
    for (let attempt = 1; ; attempt++) {
      try {
        return await destroyVmAndDisks(this.#conn, this.#snapshotRef)
      } catch (error) {
        if (attempt >= 3) {
          step.task.warning('the snapshot of this run could not be removed; the next run of the job removes it', { error: errorCode(error) })
          return
        }
        await new Promise(resolve => setTimeout(resolve, 2000))
      }
    }
  }

  async release(step: TargetStep): Promise<void> {
    await this.#restoreOperations?.().catch(error => step.task.warning('could not restore the blocked operations of the VM', { error: String(error) }))
  }
}

/** A `backup VM` task's data (XO's): the VM's name is there from the start, also for a VM cancelled before its turn. */
export function vmTaskData(vm: XapiRecord): Record<string, unknown> {
  return { type: 'VM', id: vm.uuid, name_label: vm.name_label }
}

function sourceStream<T>(source: ExportStream, items: AsyncIterable<T>): SourceStream<T> {
  return { items, report: (target, progress) => source.lease.reportTarget(target, progress), settled: source.task, close: () => source.stream.destroy() }
}

/** A XAPI record as metadata keeps it: its fields, without the client's `$` helpers. */
export function plainRecord(record: XapiRecord): PlainRecord {
  const plain: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(record)) if (!key.startsWith('$') && typeof value !== 'function') plain[key] = value
  return JSON.parse(JSON.stringify(plain)) as PlainRecord
}

/**
 * What a delta of this VM would be computed from (its disks' bases in the job's newest exported snapshot), and
 * why disks go full: the source's half of the decision, read only, shared by the run and the plan of a run.
 */
export function xapiBaseOffer(conn: PoolConnection, vm: XapiRecord, liveDisks: XapiRecord[], jobId: string, settings: Settings): { offer: BaseOffer; chainLength: number } {
  const selection = selectBase(conn, vm, liveDisks, jobId)
  const chainLength = selection.snapshot?.deltaChainLength ?? 0
  const forcedBy = settings.forceFull ? 'forceFull' : settings.fullInterval !== 0 && selection.snapshot !== undefined && settings.fullInterval <= chainLength + 1 ? 'fullInterval' : undefined
  const offer: BaseOffer = {
    bases: new Map([...selection.bases].map(([live, vdi]) => [live, vdi.uuid as string])),
    fullReasons: selection.fullReasons,
    forcedFull: forcedBy === 'forceFull' ? 'a full backup was asked (forceFull)' : forcedBy === 'fullInterval' ? `the chain reached fullInterval (${settings.fullInterval} backups)` : undefined,
    ...(forcedBy !== undefined && { forcedBy }),
    labels: new Map(liveDisks.map(disk => [disk.uuid as string, `${disk.name_label} (${disk.uuid})`])),
    continuesChain: selection.snapshot !== undefined,
  }
  return { offer, chainLength }
}
