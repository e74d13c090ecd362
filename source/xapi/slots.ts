// Per-pool concurrency limits shared by every run of a process: snapshot slots, VDI export slots and
// full VM export slots. They are taken where XAPI is called, so two jobs starting together share them,
// and each slot knows who holds it so the lanes view can show it.
import { EventEmitter } from 'node:events'
import { abortReason } from '../util/abort.ts'

export interface SlotHolder {
  runId: string
  jobId?: string
  vm: string
  vmName?: string
  disk?: string
  phase: string
}

export interface SlotProgress {
  done: number
  total?: number
  bytesPerSecond?: number
}

/** One writer fed by an export (a remote): how far it got, and whether it is still in the race. */
export interface TargetProgress {
  done: number
  state: 'writing' | 'done' | 'failed'
}

export interface SlotLease {
  readonly holder: SlotHolder
  readonly since: number
  progress: SlotProgress | undefined
  /** The writers this export feeds, by target name: the lanes view shows back-pressure with them. */
  readonly targets: Record<string, TargetProgress>
  report(progress: SlotProgress): void
  reportTarget(name: string, progress: TargetProgress): void
  release(): void
}

interface Waiter {
  holder: SlotHolder
  grant: (lease: SlotLease) => void
}

/** A counting semaphore with FIFO waiters, abortable waits and visible holders. */
export class Slots extends EventEmitter {
  readonly #held = new Set<SlotLease>()
  readonly #waiting: Waiter[] = []

  constructor(
    readonly name: string,
    public limit: number,
  ) {
    super()
  }

  get holders(): SlotLease[] {
    return [...this.#held]
  }

  get waiting(): SlotHolder[] {
    return this.#waiting.map(w => w.holder)
  }

  acquire(holder: SlotHolder, signal?: AbortSignal): Promise<SlotLease> {
    if (signal?.aborted === true) return Promise.reject(abortReason(signal))
    if (this.#held.size < this.limit && this.#waiting.length === 0) return Promise.resolve(this.#grant(holder))
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        holder,
        grant: lease => {
          signal?.removeEventListener('abort', onAbort)
          resolve(lease)
        },
      }
      const onAbort = () => {
        const i = this.#waiting.indexOf(waiter)
        if (i !== -1) this.#waiting.splice(i, 1)
        this.emit('change')
        reject(abortReason(signal!))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiting.push(waiter)
      this.emit('change')
    })
  }

  /** Holds a slot for the duration of `body`. */
  async with<T>(holder: SlotHolder, signal: AbortSignal | undefined, body: (lease: SlotLease) => Promise<T>): Promise<T> {
    const lease = await this.acquire(holder, signal)
    try {
      return await body(lease)
    } finally {
      lease.release()
    }
  }

  setLimit(limit: number): void {
    this.limit = limit
    this.#drain()
  }

  #grant(holder: SlotHolder): SlotLease {
    let released = false
    const lease: SlotLease = {
      holder,
      since: Date.now(),
      progress: undefined,
      targets: {},
      report: progress => {
        lease.progress = progress
        this.emit('progress', lease)
      },
      reportTarget: (name, progress) => {
        lease.targets[name] = progress
        this.emit('progress', lease)
      },
      release: () => {
        if (released) return
        released = true
        this.#held.delete(lease)
        this.#drain()
        this.emit('change')
      },
    }
    this.#held.add(lease)
    this.emit('change')
    return lease
  }

  #drain(): void {
    while (this.#held.size < this.limit && this.#waiting.length > 0) {
      const waiter = this.#waiting.shift()!
      waiter.grant(this.#grant(waiter.holder))
    }
  }
}

export interface PoolLimitSettings {
  snapshots: number
  vdiExports: number
  vmExports: number
}

export const DEFAULT_POOL_LIMITS: PoolLimitSettings = { snapshots: 2, vdiExports: 12, vmExports: 2 }

export class PoolLimits {
  readonly snapshots: Slots
  readonly vdiExports: Slots
  readonly vmExports: Slots

  constructor(
    readonly poolUuid: string,
    settings: PoolLimitSettings = DEFAULT_POOL_LIMITS,
  ) {
    this.snapshots = new Slots('snapshot', settings.snapshots)
    this.vdiExports = new Slots('VDI export', settings.vdiExports)
    this.vmExports = new Slots('VM export', settings.vmExports)
  }

  configure(settings: Partial<PoolLimitSettings>): void {
    if (settings.snapshots !== undefined) this.snapshots.setLimit(settings.snapshots)
    if (settings.vdiExports !== undefined) this.vdiExports.setLimit(settings.vdiExports)
    if (settings.vmExports !== undefined) this.vmExports.setLimit(settings.vmExports)
  }
}

/**
 * The limits of every pool one process talks to: the daemon makes one and gives it to each pool connection and
 * to the lanes view; a proxy holds its own.
 */
export class PoolLimitsRegistry {
  readonly #byPool = new Map<string, PoolLimits>()

  /** The limits of a pool, made with the defaults the first time it is asked for. */
  of(poolUuid: string): PoolLimits {
    let limits = this.#byPool.get(poolUuid)
    if (limits === undefined) this.#byPool.set(poolUuid, (limits = new PoolLimits(poolUuid)))
    return limits
  }

  all(): PoolLimits[] {
    return [...this.#byPool.values()]
  }
}
