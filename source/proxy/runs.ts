// The runs a proxy executes for an appliance: each from its specification, with the engine, against pools and
// remotes opened with the credentials that came with it (held in memory for the run, never written or logged).
// Its events are numbered and kept in a bounded buffer, so that an appliance whose channel dropped re-attaches
// and catches up; the run itself does not depend on any channel.
import { LifeboatError } from '../util/errors.ts'
import { startBackupRun, type StartedRun } from '../engine/index.ts'
import { parseJob } from '../protocol/job.ts'
import { PoolConnection, PoolLimitsRegistry, type SlotHolder, type SlotKind, type UpstreamSlot } from '../xapi/index.ts'
import { abortReason } from '../util/abort.ts'
import { openRemote, type RemoteHandler } from '../storage/index.ts'
import { RUN_EVENT, SLOT_PROGRESS, SLOT_RELEASE, SLOT_REQUEST, type RunSpec, type SequencedEvent, type SlotProgressNotification, type SlotRequestNotification } from '../protocol/proxy.ts'
import type { ClientConnection } from '../daemon/server.ts'

/** Events kept per run for a re-attach: far more than a run's few hundred; a longer gap than this cannot be caught up. */
export const RUN_EVENTS_KEPT = 20_000
/** How often a held slot's progress is sent to the appliance's lanes. */
const PROGRESS_MS = 1000
/**
 * How long a finished run's events stay for an appliance that has not seen its end yet (its daemon was down: an
 * upgrade, a reboot): a day, a few MB at most for a busy proxy.
 */
const FINISHED_KEPT_MS = 24 * 3600_000

/** A pool slot a run asked its appliance for: waiting, or granted (held until the run gives it back). */
interface SlotRequest {
  notification: SlotRequestNotification
  granted: boolean
  grant: () => void
}

interface DelegatedRun {
  started: StartedRun
  applianceRunId: string
  events: SequencedEvent[]
  nextSeq: number
  ended: boolean
  attached: Set<ClientConnection>
  slots: Map<string, SlotRequest>
}

export class DelegatedRuns {
  readonly #runs = new Map<string, DelegatedRun>()
  #nextRequest = 0
  /**
   * The pools' slots of this proxy's runs: each is asked of the appliance, which hands out the slots of every pool
   * across its own runs and all its proxies' (its limits hold); none is counted here.
   */
  readonly limits = new PoolLimitsRegistry((pool, kind) => (holder, signal) => this.#requestSlot(pool, kind, holder, signal))

  constructor(private readonly log: (line: string) => void) {}

  get activeCount(): number {
    return [...this.#runs.values()].filter(run => !run.ended).length
  }

  async start(spec: RunSpec): Promise<{ runId: string }> {
    const job = parseJob(spec.job)
    if (job.id === undefined) throw new LifeboatError('RUN_SPEC_INVALID', 'The delegated job has no id; the appliance gives its jobs one.')
    const remotes = new Map<string, RemoteHandler>()
    const pools = new Map<string, PoolConnection>()
    const release = async () => {
      await Promise.all([...pools.values()].map(conn => conn.disconnect().catch(() => {})))
      await Promise.all([...remotes.values()].map(handler => handler.close().catch(() => {})))
    }
    try {
      for (const remote of spec.remotes) {
        const handler = openRemote(remote.url, { log: this.log })
        remotes.set(remote.name, handler)
        await handler.sync()
      }
      for (const credentials of spec.pools) {
        const conn = await PoolConnection.connect(credentials, { limits: this.limits })
        pools.set(conn.poolUuid, conn)
      }
    } catch (error) {
      await release()
      throw error
    }
    let run: DelegatedRun | undefined
    const early: SequencedEvent[] = []
    let seq = 0
    const started = startBackupRun(job, { pools, remotes }, {
      schedule: spec.schedule,
      onEvent: event => {
        const sequenced = { seq: seq++, event }
        if (run === undefined) return void early.push(sequenced)
        this.#record(run, sequenced)
      },
    })
    run = { started, applianceRunId: spec.applianceRunId, events: [], nextSeq: 0, ended: false, attached: new Set(), slots: new Map() }
    this.#runs.set(started.runId, run)
    for (const sequenced of early) this.#record(run, sequenced)
    this.log(`run ${started.runId} started for the appliance's run ${spec.applianceRunId} (job "${job.name}")`)
    const finished = run
    void started.done.then(async tree => {
      finished.ended = true
      await release()
      this.log(`run ${started.runId} (the appliance's ${finished.applianceRunId}) ended ${tree.status}`)
      setTimeout(() => this.#runs.delete(started.runId), FINISHED_KEPT_MS).unref()
    })
    return { runId: started.runId }
  }

  /** The events after `after`, and this connection told of each next one; a gap the buffer no longer holds is refused. */
  attach(runId: string, after: number, client: ClientConnection): { events: SequencedEvent[]; ended: boolean } {
    const run = this.#get(runId)
    const first = run.events[0]?.seq ?? run.nextSeq
    if (after + 1 < first) throw new LifeboatError('RUN_EVENTS_LOST', `The proxy keeps the last ${RUN_EVENTS_KEPT} events of run ${runId}; events ${after + 1}-${first - 1} are gone, the appliance cannot catch up with them.`)
    run.attached.add(client)
    // After the answer: the slots the run waits for or holds, asked again of this appliance (a new channel, or a
    // restarted daemon that knows none of them).
    setImmediate(() => {
      for (const request of run.slots.values()) client.send(SLOT_REQUEST, { ...request.notification, held: request.granted })
    })
    return { events: run.events.filter(sequenced => sequenced.seq > after), ended: run.ended }
  }

  /** The appliance grants a slot; one no longer wanted (its wait was aborted) is given back at once. */
  grantSlot(runId: string, requestId: string): void {
    const run = this.#get(runId)
    const request = run.slots.get(requestId)
    if (request === undefined) return this.#broadcast(run, SLOT_RELEASE, { runId, requestId })
    if (!request.granted) request.grant()
  }

  /** A slot of a run asked of the appliances attached to it (of the next one to attach, when none is). */
  #requestSlot(pool: string, kind: SlotKind, holder: SlotHolder, signal: AbortSignal | undefined): Promise<UpstreamSlot> {
    const run = this.#runs.get(holder.runId)
    // A run of this proxy has always its record; anything else is no delegated run's and needs no appliance.
    if (run === undefined) return Promise.resolve({ release: () => {}, report: () => {} })
    if (signal?.aborted === true) return Promise.reject(abortReason(signal))
    const requestId = `${holder.runId}-${this.#nextRequest++}`
    const notification: SlotRequestNotification = { runId: holder.runId, requestId, pool, kind, holder, held: false }
    // Progress goes to the appliance's lanes at most every PROGRESS_MS, the latest figures.
    let latest: Omit<SlotProgressNotification, 'runId' | 'requestId'> | undefined
    let timer: NodeJS.Timeout | undefined
    const giveBack = () => {
      clearTimeout(timer)
      if (run.slots.delete(requestId)) this.#broadcast(run, SLOT_RELEASE, { runId: holder.runId, requestId })
    }
    const upstream: UpstreamSlot = {
      release: giveBack,
      report: (progress, targets) => {
        latest = { progress, targets: { ...targets } }
        timer ??= setTimeout(() => {
          timer = undefined
          if (run.slots.has(requestId)) this.#broadcast(run, SLOT_PROGRESS, { runId: holder.runId, requestId, ...latest! })
        }, PROGRESS_MS)
      },
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        giveBack()
        reject(abortReason(signal!))
      }
      const request: SlotRequest = {
        notification,
        granted: false,
        grant: () => {
          request.granted = true
          signal?.removeEventListener('abort', onAbort)
          resolve(upstream)
        },
      }
      run.slots.set(requestId, request)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#broadcast(run, SLOT_REQUEST, notification)
    })
  }

  #broadcast(run: DelegatedRun, method: string, params: unknown): void {
    for (const client of run.attached) client.send(method, params)
  }

  detach(client: ClientConnection): void {
    for (const run of this.#runs.values()) run.attached.delete(client)
  }

  cancel(runId: string, reason?: string): void {
    const run = this.#get(runId)
    if (!run.ended) run.started.cancel(reason)
  }

  /** Stops every run (the service is stopping) and waits for their ends, at most `timeoutMs`. */
  async cancelAll(reason: string, timeoutMs: number): Promise<void> {
    const running = [...this.#runs.values()].filter(run => !run.ended)
    for (const run of running) run.started.cancel(reason)
    await Promise.race([Promise.all(running.map(run => run.started.done)), new Promise(resolve => setTimeout(resolve, timeoutMs).unref())])
  }

  #get(runId: string): DelegatedRun {
    const run = this.#runs.get(runId)
    if (run === undefined) throw new LifeboatError('RUN_NOT_FOUND', `This proxy has no run ${runId}: it ended long ago, or the proxy restarted since (the run was interrupted).`)
    return run
  }

  #record(run: DelegatedRun, sequenced: SequencedEvent): void {
    run.events.push(sequenced)
    run.nextSeq = sequenced.seq + 1
    if (run.events.length > RUN_EVENTS_KEPT) run.events.splice(0, run.events.length - RUN_EVENTS_KEPT)
    this.#broadcast(run, RUN_EVENT, { runId: run.started.runId, ...sequenced })
  }
}
