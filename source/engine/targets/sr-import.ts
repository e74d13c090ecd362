// A VM built on an SR from the records a backup carries (XO's importIncrementalVm), for a continuous replica and
// a delta restore alike: the VM first, start blocked while it is built; each disk a new VDI or a clone of a base
// (resized when the source grew); its VBDs; VIFs on the matching network, MACs kept unless asked. A backup with
// memory gives a suspend VDI, created first, on which the VM is created Suspended. The disks' content is the
// caller's to upload; whatever fails, `discard` removes exactly what this build created.
import type { Readable } from 'node:stream'
import type { Task } from '../../tasks/index.ts'
import { destroyVdi, destroyVmAndDisks, importVdiVhd, type PoolConnection } from '../../xapi/index.ts'
import { sleep, throwIfAborted } from '../../util/abort.ts'
import { buildingBlocks, vbdCreateRecord, vdiCreateRecord, vifCreateRecord, vifNetwork, vmCreateRecord, type NewVmIdentity } from '../restore/records.ts'

type XapiFields = Record<string, unknown>

/** Tries at removing a half-built VM, DISCARD_RETRY_MS apart: a toolstack restart lasts seconds. */
const DISCARD_ATTEMPTS = 5
const DISCARD_RETRY_MS = 2000

export interface BuildDisk {
  /** The disk's ref in the records (the key of `vdis`, the VBDs' VDI field). */
  ref: string
  record: XapiFields
  /** Its virtual size now (the source may have grown since the base). */
  size: number
  /** A VDI of this SR to clone (the base the disk's delta goes onto); absent: a new empty VDI. */
  cloneOf?: string
}

export interface VmBuildPlan {
  srRef: string
  /** The VM's configuration (records.vm, a backup's metadata.vm). */
  vm: XapiFields
  identity: NewVmIdentity
  disks: BuildDisk[]
  vbds: Record<string, XapiFields>
  vifs: Record<string, XapiFields>
  /** The memory of a checkpoint: the ref (one of `disks`) of the suspend VDI, and the checkpoint's record. */
  suspended?: { ref: string; checkpoint: XapiFields }
  newMacs: boolean
  /** Where warnings go (a VIF put on a default network). */
  task: Task | undefined
  signal: AbortSignal | undefined
}

export class VmBuild {
  vmRef: string | undefined
  /** Records' disk ref → the VDI built for it. */
  readonly vdis = new Map<string, string>()

  private constructor(readonly conn: PoolConnection) {}

  /** Builds the VM and its devices; on failure removes what it created and throws. */
  static async create(conn: PoolConnection, plan: VmBuildPlan): Promise<VmBuild> {
    const build = new VmBuild(conn)
    try {
      await build.#create(plan)
      return build
    } catch (error) {
      await build.discard(plan.task)
      throw error
    }
  }

  async #create(plan: VmBuildPlan): Promise<void> {
    const { conn } = this
    const { signal } = plan
    const suspendDisk = plan.disks.find(disk => disk.ref === plan.suspended?.ref)
    // The suspend VDI must exist before the VM: VM.create takes it (XO creates it first too).
    if (suspendDisk !== undefined) await this.#vdi(plan, suspendDisk)
    throwIfAborted(signal)
    const suspended = suspendDisk === undefined ? undefined : { vdiRef: this.vdis.get(suspendDisk.ref)!, checkpoint: plan.suspended!.checkpoint }
    this.vmRef = (await conn.call('VM.create', vmCreateRecord(plan.vm, plan.identity, suspended))) as string
    for (const [operation, reason] of Object.entries(buildingBlocks(plan.identity))) await conn.call('VM.add_to_blocked_operations', this.vmRef, operation, reason)
    for (const disk of plan.disks) {
      if (disk === suspendDisk) continue
      throwIfAborted(signal)
      const vdiRef = await this.#vdi(plan, disk)
      for (const vbd of Object.values(plan.vbds).filter(vbd => vbd.VDI === disk.ref)) await conn.call('VBD.create', vbdCreateRecord(vbd, this.vmRef, vdiRef))
    }
    await this.#vifs(plan)
  }

  async #vdi(plan: VmBuildPlan, disk: BuildDisk): Promise<string> {
    const { conn } = this
    if (disk.cloneOf === undefined) {
      const ref = (await conn.call('VDI.create', vdiCreateRecord(disk.record, plan.srRef, disk.size))) as string
      this.vdis.set(disk.ref, ref)
      return ref
    }
    // Settled: a clone XAPI completes despite a cancel is recorded, so that discard removes it.
    const ref = (await conn.callAsyncSettled(plan.signal, 'VDI.clone', disk.cloneOf, {})) as string
    this.vdis.set(disk.ref, ref)
    throwIfAborted(plan.signal)
    await conn.call('VDI.set_name_label', ref, String(disk.record.name_label ?? ''))
    await conn.call('VDI.set_name_description', ref, String(disk.record.name_description ?? ''))
    const cloneSize = Number(await conn.call('VDI.get_virtual_size', ref))
    if (disk.size > cloneSize) await conn.callAsync(plan.signal, 'VDI.resize', ref, disk.size)
    return ref
  }

  async #vifs(plan: VmBuildPlan): Promise<void> {
    const vifs = Object.values(plan.vifs)
    for (const vif of vifs) {
      const target = vifNetwork(this.conn, vif)
      if (target === undefined) {
        plan.task?.warning('the pool has no network: the new VM has no network interface', { vifs: vifs.length })
        return
      }
      if (target.fallback) {
        plan.task?.warning(`no network "${String(vif.$network$name_label)}" (VLAN ${String(vif.$network$VLAN ?? -1)}) on this pool: interface ${String(vif.device)} is put on network "${String(target.network.name_label)}"`, { MAC: vif.MAC })
      }
      await this.conn.call('VIF.create', vifCreateRecord(vif, this.vmRef!, target.network.$ref, plan.newMacs))
    }
  }

  /** Uploads a VHD (whole disk, or a delta onto the clone of its base) onto the VDI built for `ref`. */
  async upload(ref: string, body: Readable, length: number, signal: AbortSignal | undefined): Promise<void> {
    const vdiRef = this.vdis.get(ref)
    if (vdiRef === undefined) throw new Error(`BUG: no VDI was built for disk ${ref}`)
    await importVdiVhd(this.conn, vdiRef, body, length, signal)
  }

  /**
   * Removes the VM and every VDI this build created (never a base it cloned), trying again for a while: the pool may
   * be restarting its toolstack (what cut the build short). Never throws: a leftover is a warning.
   */
  async discard(task: Task | undefined): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        if (this.vmRef !== undefined) await destroyVmAndDisks(this.conn, this.vmRef)
        for (const vdi of this.vdis.values()) await destroyVdi(this.conn, vdi)
        return
      } catch (error) {
        if (attempt >= DISCARD_ATTEMPTS) {
          task?.warning('the half-built VM could not be removed; delete it by hand', { vm: this.vmRef, vdis: [...this.vdis.values()], error: (error as Error).message })
          return
        }
        await sleep(DISCARD_RETRY_MS)
      }
    }
  }
}
