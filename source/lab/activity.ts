// What the pool is doing at once, as an administrator's monitoring would see it: snapshots and exports
// in flight, and the most of each seen since the last reset. Tests read it to check that a client
// keeps to its concurrency limits, from the pool's side rather than from the client's own account.
export type ActivityKind = 'snapshot' | 'vdiExport' | 'vmExport'

export class Activity {
  readonly current: Record<ActivityKind, number> = { snapshot: 0, vdiExport: 0, vmExport: 0 }
  readonly max: Record<ActivityKind, number> = { snapshot: 0, vdiExport: 0, vmExport: 0 }

  async track<T>(kind: ActivityKind, operation: () => Promise<T>): Promise<T> {
    this.current[kind]++
    this.max[kind] = Math.max(this.max[kind], this.current[kind])
    try {
      return await operation()
    } finally {
      this.current[kind]--
    }
  }

  reset(): void {
    for (const kind of Object.keys(this.max) as ActivityKind[]) this.max[kind] = this.current[kind]
  }

  snapshot(): { current: Record<ActivityKind, number>; max: Record<ActivityKind, number> } {
    return { current: { ...this.current }, max: { ...this.max } }
  }
}
