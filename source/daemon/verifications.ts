// Each restore point's last verification, kept in the daemon's state (a verify only reads the remote): recorded
// as the verdicts come, shown by backup.list, pruned of the backups a complete verify no longer found.
import type { VerifiedBackup } from '../engine/index.ts'
import type { BackupListEntry, RestorePoint, VerificationState } from '../protocol/methods.ts'
import type { DaemonState } from './state.ts'

/** Findings kept per backup: the run's log has them all. */
const KEPT_FINDINGS = 10

/** One note per disk and kind (a disk shared along a chain is noted once). */
function distinctNotes(notes: VerifiedBackup['notes']): VerifiedBackup['notes'] {
  const seen = new Set<string>()
  return notes.filter(note => !seen.has(`${note.code}\n${note.path}`) && seen.add(`${note.code}\n${note.path}`) !== undefined)
}

export class Verifications {
  constructor(private readonly state: DaemonState) {}

  /** Records one verdict now (in memory at once, on disk soon after). */
  record(runId: string, readData: boolean, verdict: VerifiedBackup, at = Date.now()): void {
    const entry: VerificationState = { status: verdict.findings.length === 0 ? 'verified' : 'failed', at, readData, runId, findings: verdict.findings.slice(0, KEPT_FINDINGS), ...(verdict.notes.length > 0 && { notes: distinctNotes(verdict.notes).slice(0, KEPT_FINDINGS) }) }
    this.state.updateSoon(data => void ((data.verifications[verdict.remote] ??= {})[verdict.id] = entry))
  }

  /**
   * After a run that went through every backup of these VMs: the states of their backups it did not find
   * (deleted since) are dropped; then everything is written.
   */
  async finish(judged: VerifiedBackup[], complete: boolean): Promise<void> {
    await this.state.update(data => {
      if (!complete) return
      const seen = new Set(judged.map(verdict => `${verdict.remote}\n${verdict.id}`))
      const folders = new Set(judged.map(verdict => `${verdict.remote}\n/xo-vm-backups/${verdict.vmUuid}/`))
      for (const [remote, states] of Object.entries(data.verifications)) {
        for (const id of Object.keys(states)) {
          const folder = `${remote}\n${id.slice(0, id.lastIndexOf('/') + 1)}`
          if (folders.has(folder) && !seen.has(`${remote}\n${id}`)) delete states[id]
        }
      }
    })
  }

  /** The restore points with their last verification (none: never verified). */
  annotate(remote: string, points: RestorePoint[]): BackupListEntry[] {
    const states = this.state.data.verifications[remote] ?? {}
    return points.map(point => (states[point.id] === undefined ? point : { ...point, verification: states[point.id]! }))
  }

  /** A removed remote's states go with it (a new remote of that name is another repository). */
  async forget(remote: string): Promise<void> {
    await this.state.update(data => void delete data.verifications[remote])
  }
}
