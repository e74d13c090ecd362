// VM operations a backup needs, written the way Xen Orchestra drives XAPI so a pool can move between the
// two tools: snapshots (or checkpoints) marked with other_config keys, and careful destruction of what a
// run created, disks included.
import { LifeboatError, errorCode } from '../util/errors.ts'
import { sleep, throwIfAborted } from '../util/abort.ts'
import type { PoolConnection, XapiRecord } from './connection.ts'
import type { SlotHolder } from './slots.ts'

export const NULL_REF = 'OpaqueRef:NULL'

/** The name a snapshot carries until its other_config is set; leftovers with it are known debris. */
export const TEMPORARY_SNAPSHOT_NAME = 'xo-backup-temp-snapshot-name'

export interface VmDisk {
  vbd: XapiRecord
  vdi: XapiRecord
}

/** The VM's disks (Disk VBDs with a VDI), in userdevice order, each VDI once. */
export function vmDisks(conn: PoolConnection, vm: XapiRecord): VmDisk[] {
  const seen = new Set<string>()
  const disks: VmDisk[] = []
  for (const vbdRef of vm.VBDs as string[]) {
    const vbd = conn.byRef(vbdRef)
    if (vbd === undefined || vbd.type !== 'Disk' || vbd.VDI === NULL_REF) continue
    const vdi = conn.byRef(vbd.VDI as string)
    if (vdi === undefined || seen.has(vdi.$ref)) continue
    seen.add(vdi.$ref)
    disks.push({ vbd, vdi })
  }
  return disks.sort((a, b) => Number(a.vbd.userdevice) - Number(b.vbd.userdevice))
}

/** The VLAN of a network as XO reads it: its first PIF's, -1 without one. */
export function networkVlan(conn: PoolConnection, network: XapiRecord | undefined): number {
  const pif = ((network?.PIFs as string[] | undefined) ?? []).map(ref => conn.byRef(ref)).find(p => p !== undefined)
  return pif === undefined ? -1 : Number(pif.VLAN ?? -1)
}

export interface SnapshotOptions {
  name: string
  checkpoint?: boolean
  /** Disks not to snapshot (XO: disks tagged [NOBAK]). */
  ignoreVdis?: string[]
  /** other_config keys set on the snapshot VM and its VDIs once created. */
  otherConfig: Record<string, string>
  holder: SlotHolder
  signal?: AbortSignal
}

export interface SnapshotResult {
  ref: string
  /** Why a checkpoint became a plain snapshot, when it did. */
  fallback?: string
}

/**
 * Snapshots a VM within one of the pool's snapshot slots. A cancel cancels XAPI's task, and a snapshot
 * that completes anyway is destroyed, so a cancelled run leaves nothing behind.
 */
export async function snapshotVm(conn: PoolConnection, vm: XapiRecord, options: SnapshotOptions): Promise<SnapshotResult> {
  return conn.limits.snapshots.with(options.holder, options.signal, async () => {
    let fallback: string | undefined
    let ref: string
    const ignore = options.ignoreVdis ?? []
    if (options.checkpoint === true && vm.power_state !== 'Halted') {
      ref = (await conn.callAsyncSettled(options.signal, 'VM.checkpoint', vm.$ref, TEMPORARY_SNAPSHOT_NAME)) as string
    } else {
      if (options.checkpoint === true) fallback = 'the VM is halted: a memory snapshot is not possible, a plain snapshot was taken'
      ref = (await conn.callAsyncSettled(options.signal, 'VM.snapshot', vm.$ref, TEMPORARY_SNAPSHOT_NAME, ignore)) as string
    }
    try {
      throwIfAborted(options.signal)
      await conn.call('VM.set_is_a_template', ref, false).catch(error => {
        if (errorCode(error) !== 'XAPI_LICENSE_RESTRICTION') throw error
      })
      const snapshot = await conn.waitFor(() => conn.byRef(ref), { signal: options.signal, timeoutMs: 60_000, what: 'the snapshot record to appear' })
      for (const [key, value] of Object.entries(options.otherConfig)) {
        await setOtherConfigKey(conn, 'VM', ref, key, value)
      }
      // XAPI copies other_config into the snapshot: the record of the live VM's blocks is not the snapshot's.
      await removeOtherConfigKeys(conn, 'VM', ref, [BLOCKED_OPERATIONS_KEY])
      for (const vbdRef of snapshot.VBDs as string[]) {
        const vbd = conn.byRef(vbdRef) ?? ((await conn.call('VBD.get_record', vbdRef)) as XapiRecord)
        if (vbd.type !== 'Disk' || vbd.VDI === NULL_REF) continue
        for (const [key, value] of Object.entries(options.otherConfig)) {
          await setOtherConfigKey(conn, 'VDI', vbd.VDI as string, key, value)
        }
      }
      await conn.call('VM.set_name_label', ref, options.name)
      throwIfAborted(options.signal)
      return { ref, ...(fallback === undefined ? {} : { fallback }) }
    } catch (error) {
      await destroyVmAndDisks(conn, ref).catch(() => {})
      throw error
    }
  })
}

export async function setOtherConfigKey(conn: PoolConnection, type: string, ref: string, key: string, value: string): Promise<void> {
  await conn.call(`${type}.remove_from_other_config`, ref, key)
  await conn.call(`${type}.add_to_other_config`, ref, key, value)
}

export async function removeOtherConfigKeys(conn: PoolConnection, type: string, ref: string, keys: string[]): Promise<void> {
  for (const key of keys) await conn.call(`${type}.remove_from_other_config`, ref, key)
}

export interface DestroyOptions {
  signal?: AbortSignal
  /** VDI_IN_USE retries (XAPI keeps a disk attached to dom0 a few seconds after an export). */
  inUseRetries?: number
  inUseDelayMs?: number
}

/** Destroys a VM (a snapshot, a replica, a health-check copy) and the disks only it uses. */
export async function destroyVmAndDisks(conn: PoolConnection, ref: string, options: DestroyOptions = {}): Promise<void> {
  let vm: XapiRecord
  try {
    vm = (await conn.call('VM.get_record', ref)) as XapiRecord
  } catch (error) {
    if (errorCode(error) === 'XAPI_HANDLE_INVALID') return
    throw error
  }
  if (vm.is_control_domain === true) throw new LifeboatError('REFUSED', 'refusing to destroy a control domain.')
  const vdis: string[] = []
  for (const vbdRef of vm.VBDs as string[]) {
    const vbd = (await conn.call('VBD.get_record', vbdRef).catch(() => undefined)) as XapiRecord | undefined
    if (vbd !== undefined && vbd.type === 'Disk' && vbd.VDI !== NULL_REF) vdis.push(vbd.VDI as string)
  }
  if (typeof vm.suspend_VDI === 'string' && vm.suspend_VDI !== NULL_REF) vdis.push(vm.suspend_VDI)
  if (vm.power_state === 'Running' || vm.power_state === 'Paused') await conn.call('VM.hard_shutdown', ref)
  await conn.call('VM.destroy', ref).catch(error => {
    if (errorCode(error) !== 'XAPI_HANDLE_INVALID') throw error
  })
  for (const vdi of vdis) {
    if (await isUsedByAnotherVm(conn, vdi)) continue
    await destroyVdi(conn, vdi, options)
  }
}

async function isUsedByAnotherVm(conn: PoolConnection, vdiRef: string): Promise<boolean> {
  const vbds = (await conn.call('VDI.get_VBDs', vdiRef).catch(() => [])) as string[]
  for (const vbdRef of vbds) {
    const vmRef = (await conn.call('VBD.get_VM', vbdRef).catch(() => NULL_REF)) as string
    if (vmRef === NULL_REF) continue
    const isDom0 = await conn.call('VM.get_is_control_domain', vmRef).catch(() => false)
    if (isDom0 !== true) return true
  }
  return false
}

export async function destroyVdi(conn: PoolConnection, ref: string, options: DestroyOptions = {}): Promise<void> {
  const retries = options.inUseRetries ?? 10
  for (let attempt = 0; ; attempt++) {
    try {
      await conn.call('VDI.destroy', ref)
      return
    } catch (error) {
      const code = errorCode(error)
      if (code === 'XAPI_HANDLE_INVALID') return
      if (code !== 'XAPI_VDI_IN_USE' || attempt >= retries) throw error
      await sleep(options.inUseDelayMs ?? 2000, options.signal)
    }
  }
}

// Blocks taken by this process, per VM: two runs backing up the same VM share one block, set by the
// first and lifted by the last, so one run finishing never unblocks the VM under the other.
const heldBlocks = new Map<string, { count: number; previous: PreviousBlocks }>()

/** Operation → the reason it was blocked with before Lifeboat blocked it (null: it was not blocked). */
type PreviousBlocks = Record<string, string | null>

// What Lifeboat blocked, and what was there before, is kept on the VM: a block it could not lift (the
// toolstack restarting at that moment) is lifted by the VM's next backup or the daemon's crash clean-up.
export const BLOCKED_OPERATIONS_KEY = 'lifeboat:blocked_operations'

/** Sets blocked operations, returning a function that restores the previous state of those keys. */
export async function blockOperations(conn: PoolConnection, vm: XapiRecord, operations: Record<string, string>): Promise<() => Promise<void>> {
  const key = `${conn.poolUuid}/${vm.uuid}`
  let held = heldBlocks.get(key)
  if (held === undefined) {
    const current = vm.blocked_operations as Record<string, string>
    // A block left by an earlier run is ours: what it replaced is the state to come back to. One with our own
    // reason and no record was left by a version that kept none.
    const before = (operation: string) => (current[operation] === undefined || current[operation] === operations[operation] ? null : current[operation]!)
    const previous: PreviousBlocks = { ...Object.fromEntries(Object.keys(operations).map(operation => [operation, before(operation)])), ...leftoverBlocks(vm) }
    held = { count: 0, previous }
    heldBlocks.set(key, held)
    try {
      await setOtherConfigKey(conn, 'VM', vm.$ref, BLOCKED_OPERATIONS_KEY, JSON.stringify(previous))
      for (const [operation, reason] of Object.entries(operations)) {
        await conn.call('VM.remove_from_blocked_operations', vm.$ref, operation)
        await conn.call('VM.add_to_blocked_operations', vm.$ref, operation, reason).catch(error => {
          if (errorCode(error) !== 'XAPI_MAP_DUPLICATE_KEY') throw error
        })
      }
    } catch (error) {
      if (held.count === 0) heldBlocks.delete(key)
      throw error
    }
  }
  held.count++
  const entry = held
  let released = false
  return async () => {
    if (released) return
    released = true
    if (--entry.count > 0) return
    heldBlocks.delete(key)
    await liftBlocks(conn, vm.$ref, entry.previous)
  }
}

async function liftBlocks(conn: PoolConnection, vmRef: string, previous: PreviousBlocks): Promise<void> {
  for (const [operation, reason] of Object.entries(previous)) {
    await conn.call('VM.remove_from_blocked_operations', vmRef, operation)
    if (reason !== null) await conn.call('VM.add_to_blocked_operations', vmRef, operation, reason)
  }
  await removeOtherConfigKeys(conn, 'VM', vmRef, [BLOCKED_OPERATIONS_KEY])
}

/** The blocks an earlier Lifeboat run recorded on the VM and did not lift, or {} (an unreadable record too). */
function leftoverBlocks(vm: XapiRecord): PreviousBlocks {
  const text = (vm.other_config as Record<string, string> | undefined)?.[BLOCKED_OPERATIONS_KEY]
  if (text === undefined) return {}
  try {
    const parsed: unknown = JSON.parse(text)
    if (typeof parsed !== 'object' || parsed === null) return {}
    return Object.fromEntries(Object.entries(parsed).filter((entry): entry is [string, string | null] => typeof entry[1] === 'string' || entry[1] === null))
  } catch {
    return {}
  }
}

/** Lifts the blocks earlier Lifeboat runs left on the pool's VMs (those this process holds are in use, those `leave` names are another's); returns those VMs. */
export async function liftLeftoverBlocks(conn: PoolConnection, leave: (vm: XapiRecord) => boolean = () => false): Promise<XapiRecord[]> {
  const lifted: XapiRecord[] = []
  for (const vm of conn.all('VM')) {
    if (vm.is_a_snapshot === true || vm.is_a_template === true || heldBlocks.has(`${conn.poolUuid}/${vm.uuid}`) || leave(vm)) continue
    if ((vm.other_config as Record<string, string> | undefined)?.[BLOCKED_OPERATIONS_KEY] === undefined) continue
    await liftBlocks(conn, vm.$ref, leftoverBlocks(vm))
    lifted.push(vm)
  }
  return lifted
}
