// What a job does, in Xen Orchestra's names (Delta backup, Continuous Replication, Disaster Recovery,
// Rolling snapshot) and one sentence each: the wizard explains a choice with it, the job screen names it.
import type { Job, Sr } from '../contract.ts'

export interface JobShape {
  mode: 'full' | 'delta'
  remotes: number
  srs: number
  /** checkpointSnapshot: the snapshot holds the RAM. */
  memory: boolean
  /** distributeBackups, distributeReplications: each VM to one of the remotes, or SRs. */
  distributed?: { backups: boolean; replications: boolean }
  /** A mirror job's source remote: it copies that remote's backups instead of snapshotting VMs. */
  source?: string
  /** A verify job: it reads the backups on its remotes (every block too with readData) and writes nothing. */
  verify?: { readData: boolean }
}

const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`

/** What the mode choice means, whatever the targets: one line. */
export const MODE_WORDS: Record<JobShape['mode'], string> = {
  delta: 'Delta: the whole disks once, then only the changed blocks. To remotes: VHD chains (Delta backup); to SRs: Continuous Replication.',
  full: 'Full: the whole VM at every run. To remotes: one XVA file (Full backup); to SRs: Disaster Recovery.',
}

/** One part of a job: its XO name, its targets and what it does, in one sentence. */
export interface ModePart {
  name: string
  where: string
  sentence: string
}

/** Where each VM goes, said of a kind of target: on each of them, or (distributed) on one of them. */
const SPREAD = 'each VM on one of them, the one with the most free space'

/** What a verify job does, on the first step of the wizard. */
export const VERIFY_WORDS = 'Verify: reads the backups on remotes and records each one verified or failed, with the reason; it writes and repairs nothing.'

export function modeParts(shape: JobShape): ModePart[] {
  if (shape.verify !== undefined) {
    return [{
      name: shape.verify.readData ? 'Verify with read data' : 'Verify',
      where: plural(shape.remotes, 'remote'),
      sentence: shape.verify.readData
        ? 'checks every backup on each remote (metadata, VHD structure, chains, XVA framing) and reads every block back, checking its checksum; it writes nothing.'
        : 'checks every backup on each remote (metadata, VHD structure, chains, XVA framing) without reading the blocks (Read data does); it writes nothing.',
    }]
  }
  if (shape.source !== undefined) {
    const where = `${shape.source || '(no source)'} → ${plural(shape.remotes, 'remote')}`
    return [
      shape.mode === 'delta'
        ? { name: 'Delta mirror', where, sentence: `copies the VHD chains found on remote ${shape.source || '(no source)'} to each remote, what they lack only, each backup keeping its date; retention and merges on the targets.` }
        : { name: 'Full mirror', where, sentence: `copies the XVA backups found on remote ${shape.source || '(no source)'} to each remote, what they lack only, each backup keeping its date.` },
    ]
  }
  const parts: ModePart[] = []
  const spread = shape.distributed ?? { backups: false, replications: false }
  if (shape.remotes > 0) {
    const where = `${plural(shape.remotes, 'remote')}${spread.backups ? ', distributed' : ''}`
    parts.push(
      shape.mode === 'delta'
        ? { name: 'Delta backup', where, sentence: spread.backups ? `VHD chains, ${SPREAD} (a chain stays where it is until a new full): the first run writes the whole disks, later runs only the changed blocks.` : 'VHD chains on each remote: the first run writes the whole disks, later runs only the changed blocks.' }
        : { name: 'Full backup', where, sentence: spread.backups ? `every run writes the whole VM as one XVA file, ${SPREAD}.` : 'every run writes the whole VM as one XVA file on each remote.' },
    )
  }
  if (shape.srs > 0) {
    const where = `${plural(shape.srs, 'SR')}${spread.replications ? ', distributed' : ''}`
    const onEach = spread.replications ? `, ${SPREAD}` : ' on each SR'
    parts.push(
      shape.mode === 'delta'
        ? {
            name: shape.memory ? 'Continuous Replication with memory' : 'Continuous Replication',
            where,
            sentence: `a replica VM${onEach}, copied whole once, then only the changed blocks${shape.memory ? '; it is kept suspended with the RAM and its clone resumes without a boot' : ''}; clone the replica to start it.`,
          }
        : { name: 'Disaster Recovery', where, sentence: spread.replications ? `every run copies the whole VM as a new replica, ${SPREAD}; clone the replica to start it.` : 'every run copies the whole VM onto each SR as a new replica; clone the replica to start it.' },
    )
  }
  if (parts.length === 0) parts.push({ name: 'Rolling snapshot', where: 'no target', sentence: 'nothing is sent anywhere: each run snapshots the VMs and keeps the newest snapshots on their own pool (how many: the When step).' })
  return parts
}

/** "Delta backup (1 remote) + Continuous Replication (2 SRs)". */
export function modeTitle(shape: JobShape): string {
  return modeParts(shape)
    .map(part => `${part.name} (${part.where})`)
    .join(' + ')
}

/** A job's SR as an administrator knows it: its name and its pool, or the uuid when no connected pool has it. */
export function srLabel(uuid: string, srs: readonly Sr[] | undefined): string {
  const sr = srs?.find(s => s.uuid === uuid)
  return sr === undefined ? `SR ${uuid} (not in a connected pool)` : `SR ${sr.name} (pool ${sr.poolName})`
}

export function shapeOf(job: Job): JobShape {
  return { mode: job.mode, remotes: job.remotes.length, srs: job.srs.length, memory: job.settings.checkpointSnapshot === true, distributed: { backups: job.settings.distributeBackups === true, replications: job.settings.distributeReplications === true }, ...(job.type === 'mirror' && { source: job.sourceRemote ?? '' }), ...(job.type === 'verify' && { verify: { readData: job.readData === true } }) }
}

/** Why cr-seed does not apply to this job (it seeds a continuous replication: delta mode, an SR), or undefined. */
export function seedRefusal(job: Job): string | undefined {
  if (job.mode === 'delta' && job.srs.length > 0) return undefined
  return `cr-seed gives a continuous replication its base: a job in delta mode with an SR. "${job.name}" is ${modeTitle(shapeOf(job))}.`
}
