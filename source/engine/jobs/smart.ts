// Which VMs a run backs up, decided when it starts: the listed VMs, or a smart selection over the
// pools' VM records; never templates, snapshots, control domains, xo:no-bak VMs or the job's own replicas.
import type { VmSelection } from '../../protocol/job.ts'

/** What selection needs of a VM record (XAPI field names), plus the uuid of its pool. */
export interface VmCandidate {
  uuid: string
  poolUuid: string
  name_label?: string
  tags: string[]
  power_state: string
  other_config: Record<string, string>
  blocked_operations: Record<string, string>
  is_a_template: boolean
  is_a_snapshot: boolean
  is_control_domain: boolean
}

/** A VM record (as XAPI gives it) of the pool `poolUuid`, as selection reads it. */
export function vmCandidate(vm: { uuid: string; [field: string]: unknown }, poolUuid: string): VmCandidate {
  return {
    uuid: vm.uuid,
    poolUuid,
    name_label: vm.name_label as string,
    tags: (vm.tags as string[]) ?? [],
    power_state: String(vm.power_state),
    other_config: (vm.other_config as Record<string, string>) ?? {},
    blocked_operations: (vm.blocked_operations as Record<string, string>) ?? {},
    is_a_template: vm.is_a_template === true,
    is_a_snapshot: vm.is_a_snapshot === true,
    is_control_domain: vm.is_control_domain === true,
  }
}

export type ExclusionReason = 'template' | 'snapshot' | 'control domain' | 'tagged xo:no-bak' | "replica made by this job"

export interface VmSelectionResult {
  /** VM uuids to back up, in the order of the records (listed order for a fixed list). */
  selected: string[]
  /** Listed or matching VMs left out, with why (for the run's log). */
  excluded: Array<{ uuid: string; reason: ExclusionReason }>
  /** Listed VMs found in no connected pool. */
  missing: string[]
}

export function exclusionReason(vm: VmCandidate, jobId: string | undefined): ExclusionReason | undefined {
  if (vm.is_a_template) return 'template'
  if (vm.is_a_snapshot) return 'snapshot'
  if (vm.is_control_domain) return 'control domain'
  if (vm.tags.some(tag => tag === 'xo:no-bak' || tag.startsWith('xo:no-bak='))) return 'tagged xo:no-bak'
  if (jobId !== undefined && 'start' in vm.blocked_operations && vm.other_config['xo:backup:job'] === jobId) return 'replica made by this job'
  return undefined
}

/** Why a VM is outside a smart selection (the first criterion it fails), or undefined when it matches. */
export function smartMismatch(vm: VmCandidate, smart: Extract<VmSelection, { smart: unknown }>['smart']): string | undefined {
  if (smart.pools.length > 0 && !smart.pools.includes(vm.poolUuid)) return 'its pool is not among the pools of the selection'
  if (smart.notPools.includes(vm.poolUuid)) return 'its pool is excluded by the selection'
  if (smart.tags.length > 0 && !smart.tags.some(tag => vm.tags.includes(tag))) return `it has none of the tags ${smart.tags.map(tag => `"${tag}"`).join(', ')}`
  const excludedTag = smart.notTags.find(tag => vm.tags.includes(tag))
  if (excludedTag !== undefined) return `it has the excluded tag "${excludedTag}"`
  if (smart.powerState !== undefined && vm.power_state.toLowerCase() !== smart.powerState) return `it is ${vm.power_state.toLowerCase()}, the selection takes ${smart.powerState} VMs only`
  return undefined
}

/** Pure: the same records and job always give the same VMs. An empty `selected` means the run is skipped. */
export function selectVms(selection: VmSelection, vms: readonly VmCandidate[], jobId: string | undefined): VmSelectionResult {
  const result: VmSelectionResult = { selected: [], excluded: [], missing: [] }
  const consider = (vm: VmCandidate) => {
    const reason = exclusionReason(vm, jobId)
    if (reason === undefined) result.selected.push(vm.uuid)
    else result.excluded.push({ uuid: vm.uuid, reason })
  }
  if ('uuids' in selection) {
    const byUuid = new Map(vms.map(vm => [vm.uuid, vm]))
    for (const uuid of new Set(selection.uuids)) {
      const vm = byUuid.get(uuid)
      if (vm === undefined) result.missing.push(uuid)
      else consider(vm)
    }
  } else {
    // Templates, snapshots and control domains are not VMs to a smart selection: left out without a word.
    for (const vm of vms) if (!vm.is_a_template && !vm.is_a_snapshot && !vm.is_control_domain && smartMismatch(vm, selection.smart) === undefined) consider(vm)
  }
  return result
}
