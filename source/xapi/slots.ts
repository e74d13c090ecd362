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
  /** The proxy a delegated run's slot is held for (on the appliance, which hands out its proxies' slots). */
  proxy?: string
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

/**
 * A slot another process hands out (a proxy's, from its appliance): taken after the local one, released with
 * it; resolves with its release once granted.
 */
export type SlotGate = (holder: SlotHolder, signal: AbortSignal | undefined) => Promise<UpstreamSlot>

/** A slot granted elsewhere: given back with the local one, and told its progress (the appliance's lanes show it). */
export interface UpstreamSlot {
  release(): void
  report(progress: SlotProgress, targets: Record<string, TargetProgress>): void
}

/** A counting semaphore with FIFO waiters, abortable waits and visible holders. */
export class Slots extends EventEmitter {
  readonly #held = new Set<SlotLease>()
  readonly #waiting: Waiter[] = []

  constructor(
    readonly name: string,
    public limit: number,
    private readonly gate?: SlotGate,
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
    const local = this.#acquireLocal(holder, signal)
    const gate = this.gate
    if (gate === undefined) return local
    return local.then(async lease => {
      let upstream: UpstreamSlot
      try {
        upstream = await gate(holder, signal)
      } catch (error) {
        lease.release()
        throw error
      }
      const { release, report, reportTarget } = lease
      lease.release = () => {
        release()
        upstream.release()
      }
      lease.report = progress => {
        report(progress)
        upstream.report(progress, lease.targets)
      }
      lease.reportTarget = (name, progress) => {
        reportTarget(name, progress)
        if (lease.progress !== undefined) upstream.report(lease.progress, lease.targets)
      }
      return lease
    })
  }

  /** A slot held whatever the limit: one granted before this process started (a restarted daemon hears of it again). */
  hold(holder: SlotHolder): SlotLease {
    return this.#grant(holder)
  }

  #acquireLocal(holder: SlotHolder, signal?: AbortSignal): Promise<SlotLease> {
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
/** The local limits of a registry whose slots are handed out elsewhere (a proxy's): none. */
const UNBOUNDED: PoolLimitSettings = { snapshots: Infinity, vdiExports: Infinity, vmExports: Infinity }

export type SlotKind = keyof PoolLimitSettings
export const SLOT_KINDS: readonly SlotKind[] = ['snapshots', 'vdiExports', 'vmExports']

/** Where the slots of a pool are handed out when not only here: each kind's gate (a proxy asks its appliance). */
export type PoolGate = (poolUuid: string, kind: SlotKind) => SlotGate

export class PoolLimits {
  readonly snapshots: Slots
  readonly vdiExports: Slots
  readonly vmExports: Slots

  constructor(
    readonly poolUuid: string,
    settings: PoolLimitSettings = DEFAULT_POOL_LIMITS,
    gate?: PoolGate,
  ) {
    this.snapshots = new Slots('snapshot', settings.snapshots, gate?.(poolUuid, 'snapshots'))
    this.vdiExports = new Slots('VDI export', settings.vdiExports, gate?.(poolUuid, 'vdiExports'))
    this.vmExports = new Slots('VM export', settings.vmExports, gate?.(poolUuid, 'vmExports'))
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

  /** `gate`: the slots are handed out elsewhere too (a proxy's registry: by its appliance, whose limits hold; no limit of its own). */
  constructor(private readonly gate?: PoolGate) {}

  /** The limits of a pool, made with the defaults the first time it is asked for. */
  of(poolUuid: string): PoolLimits {
    let limits = this.#byPool.get(poolUuid)
    if (limits === undefined) this.#byPool.set(poolUuid, (limits = new PoolLimits(poolUuid, this.gate === undefined ? DEFAULT_POOL_LIMITS : UNBOUNDED, this.gate)))
    return limits
  }

  all(): PoolLimits[] {
    return [...this.#byPool.values()]
  }
}
