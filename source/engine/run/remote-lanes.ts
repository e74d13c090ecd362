// What runs without a pool read from a remote — a mirror copying its backups, a verify reading them — as
// lanes like the pools' exports: one slot per copy or verify of a VM in progress, with its bytes and, for a
// mirror, each target's progress. Shared by every run of the process; the daemon's lanes view shows them.
import { EventEmitter } from 'node:events'
import { Slots } from '../../xapi/index.ts'

export class RemoteLanes extends EventEmitter {
  readonly #lanes = new Map<string, Slots>()

  /** The remote's lane (made on first use, `added` emitted so that the lanes view watches it). */
  of(remote: string, limit: number): Slots {
    let slots = this.#lanes.get(remote)
    if (slots === undefined) {
      slots = new Slots(`${remote} reads`, limit)
      this.#lanes.set(remote, slots)
      this.emit('added', slots)
    }
    return slots
  }

  all(): Array<{ remote: string; slots: Slots }> {
    return [...this.#lanes].map(([remote, slots]) => ({ remote, slots }))
  }
}
