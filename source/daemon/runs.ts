// The runs of this daemon: started through the engine, one at a time per job, their events streamed to
// subscribers and persisted per runId, indexed for run.list, pruned to the last N per job, cancelled on stop.
import { unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { foldRun, HEALTH_CHECK_TASK, RunLogStore, type TaskEvent, type TaskNode } from '../tasks/index.ts'
import { LifeboatError } from '../util/errors.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'
import type { StartedRun } from '../engine/index.ts'
import type { RunStatus, RunSummary } from '../protocol/methods.ts'
import type { DaemonState } from './state.ts'

/** A run as the daemon follows it: the engine's, or one delegated to a proxy, which can be left going there. */
type FollowedRun = StartedRun & { detach?: () => void }

type RunInfo = { jobId?: string; jobName?: string; scheduleName?: string; proxy?: string }

interface ActiveRun {
  started: FollowedRun
  /** Left going elsewhere as the daemon stops (detachAll): its index entry stays pending. */
  detached: boolean
  jobId?: string
  /** Writes of the log, chained so the final one lands last. */
  saving: Promise<void>
  /** Resolves once the run's final log and its index entry are written. */
  finished: Promise<void>
}

export interface RunsOptions {
  state: DaemonState
  store: RunLogStore
  onTaskEvent: (runId: string, event: TaskEvent, seq: number) => void
  onRunsChanged: () => void
  log: (line: string) => void
}

export type RunStarter = (onEvent: (event: TaskEvent) => void) => FollowedRun

/** How often a running run's pending tree is rewritten, so a crash loses little of its log. */
const SAVE_INTERVAL_MS = 5000

export class Runs {
  readonly #active = new Map<string, ActiveRun>()
  readonly #byJob = new Map<string, string>()

  constructor(private readonly options: RunsOptions) {}

  runningRunOf(jobId: string): string | undefined {
    return this.#byJob.get(jobId)
  }

  get activeCount(): number {
    return this.#active.size
  }

  /** Starts a run through `start` (the engine); a job already running is refused with JOB_RUNNING. */
  async start(kind: RunSummary['kind'], info: RunInfo, start: RunStarter): Promise<string> {
    if (info.jobId !== undefined) {
      const running = this.#byJob.get(info.jobId)
      if (running !== undefined) {
        throw new LifeboatError('JOB_RUNNING', `The job "${info.jobName ?? info.jobId}" is already running (run ${running}); wait for it to end or cancel it with 'npx lifeboat run cancel ${running}'.`, { data: { runId: running } })
      }
    }
    return this.#track(info, start, (runId, started) => ({ runId, kind, ...info, start: started.log.events[0]?.timestamp ?? Date.now(), status: 'pending' }))
  }

  /** Takes up again a run an earlier daemon process left going elsewhere (on a proxy): its index entry stays, pending until it ends. */
  async resume(summary: RunSummary, start: RunStarter): Promise<string> {
    const info: RunInfo = { ...(summary.jobId !== undefined && { jobId: summary.jobId }), ...(summary.jobName !== undefined && { jobName: summary.jobName }) }
    return this.#track(info, start, () => undefined)
  }

  /** Follows a run started by `start`: its events to subscribers, its log saved as it goes and at its end, its index entry (`summary`, when new) kept. */
  async #track(info: RunInfo, start: RunStarter, summary: (runId: string, started: FollowedRun) => RunSummary | undefined): Promise<string> {
    let runId: string | undefined
    let seq = 0
    const early: TaskEvent[] = []
    let active: ActiveRun | undefined
    const started = start(event => {
      // The root's start event comes before start() returns: its id is the runId.
      runId ??= event.id
      // The job is free from its root's end on: a client that saw the end (job run --wait) may start the next run at once,
      // before the log and the index are written.
      if (event.type === 'end' && event.id === runId && info.jobId !== undefined && this.#byJob.get(info.jobId) === runId) this.#byJob.delete(info.jobId)
      if (this.#active.has(runId)) this.options.onTaskEvent(runId, event, seq)
      else early.push(event)
      seq++
      // What the root records of itself (a proxy's run id) is on disk at once: a restarted daemon needs it.
      if (event.type === 'property' && event.id === runId && active !== undefined) this.#save(active)
    })
    runId = started.runId
    active = { started, ...(info.jobId !== undefined && { jobId: info.jobId }), saving: Promise.resolve(), finished: Promise.resolve(), detached: false }
    this.#active.set(runId, active)
    if (info.jobId !== undefined) this.#byJob.set(info.jobId, runId)
    // Indexed (pending) before anyone hears of its first event: a client reacting to it finds the run.
    const entry = summary(runId, started)
    const indexed = entry === undefined ? Promise.resolve() : this.options.state.update(data => void data.runs.push(entry))
    early.forEach((event, index) => this.options.onTaskEvent(runId!, event, index))
    await indexed
    this.#save(active)
    this.options.onRunsChanged()
    const timer = setInterval(() => this.#save(active), SAVE_INTERVAL_MS)
    timer.unref()
    const tracked = active
    active.finished = started.done.then(async tree => {
      clearInterval(timer)
      await this.#finish(tracked, tree, info.jobName)
    })
    return runId
  }

  /** The live tree of a running run and how many events it folds. */
  liveTree(runId: string): { tree: TaskNode; eventCount: number } | undefined {
    const active = this.#active.get(runId)
    if (active === undefined) return undefined
    const events = active.started.log.events
    return { tree: foldRun(events)!, eventCount: events.length }
  }

  async tree(runId: string): Promise<TaskNode> {
    const live = this.liveTree(runId)
    if (live !== undefined) return live.tree
    const stored = await this.options.store.load(runId)
    if (stored === undefined) throw new LifeboatError('RUN_NOT_FOUND', `No run ${runId} is known; 'npx lifeboat run list' shows the runs kept.`)
    return stored
  }

  /** The runs in progress and their jobs. */
  activeJobs(): Array<{ runId: string; jobId: string }> {
    return [...this.#byJob].map(([jobId, runId]) => ({ runId, jobId }))
  }

  summary(runId: string): RunSummary | undefined {
    return this.options.state.data.runs.find(run => run.runId === runId)
  }

  list(filter: { jobId?: string; limit?: number; status?: RunStatus } = {}): RunSummary[] {
    const out: RunSummary[] = []
    const runs = this.options.state.data.runs
    for (let i = runs.length - 1; i >= 0 && out.length < (filter.limit ?? Infinity); i--) {
      const run = runs[i]!
      if (filter.jobId !== undefined && run.jobId !== filter.jobId) continue
      if (filter.status !== undefined && run.status !== filter.status) continue
      out.push(run)
    }
    return out
  }

  cancel(runId: string, reason = 'cancelled by the administrator'): void {
    const active = this.#active.get(runId)
    if (active === undefined) {
      if (this.summary(runId) !== undefined) throw new LifeboatError('RUN_NOT_RUNNING', `The run ${runId} is not running any more; nothing to cancel.`)
      throw new LifeboatError('RUN_NOT_FOUND', `No run ${runId} is known; 'npx lifeboat run list' shows the runs kept.`)
    }
    active.started.cancel(reason)
  }

  /**
   * Stops following the runs that go on elsewhere (delegated to a proxy): their logs stay pending, to be taken
   * up again at the next start. Returns how many.
   */
  async detachAll(timeoutMs: number): Promise<number> {
    const runs = [...this.#active.values()].filter(run => run.started.detach !== undefined)
    for (const run of runs) {
      run.detached = true
      run.started.detach!()
    }
    await Promise.race([Promise.all(runs.map(run => run.finished)), new Promise(resolve => setTimeout(resolve, timeoutMs).unref())])
    return runs.length
  }

  /** Cancels every run and waits (at most `timeoutMs`) for their logs and the index to say so. */
  async cancelAll(reason: string, timeoutMs: number): Promise<void> {
    const runs = [...this.#active.values()]
    for (const run of runs) run.started.cancel(reason)
    const settled = Promise.all(runs.map(run => run.finished))
    await Promise.race([settled, new Promise(resolve => setTimeout(resolve, timeoutMs).unref())])
  }

  /** Start-up: runs left pending by a dead daemon become interrupted, in their logs and in the index (ending at their last event). */
  async markInterrupted(reason: string, except: ReadonlySet<string> = new Set()): Promise<string[]> {
    const trees = new Map((await this.options.store.markInterruptedRuns(reason, except)).map(tree => [tree.id, tree]))
    const interrupted = new Set(trees.keys())
    await this.options.state.update(data => {
      for (const run of data.runs) {
        const tree = trees.get(run.runId)
        if (tree !== undefined) Object.assign(run, summarize(tree))
        else if (run.status === 'pending' && !except.has(run.runId)) run.status = 'interrupted'
        else continue
        interrupted.add(run.runId)
      }
    })
    return [...interrupted]
  }

  #save(active: ActiveRun): void {
    const tree = foldRun(active.started.log.events)
    if (tree === undefined) return
    active.saving = active.saving.then(() => this.options.store.save(tree)).catch(error => this.options.log(`run ${tree.id}: cannot write its log: ${(error as Error).message}`))
  }

  async #finish(active: ActiveRun, tree: TaskNode, jobName: string | undefined): Promise<void> {
    const runId = active.started.runId
    if (active.jobId !== undefined && this.#byJob.get(active.jobId) === runId) this.#byJob.delete(active.jobId)
    this.#save(active)
    await active.saving
    this.#active.delete(runId)
    if (active.detached && tree.status === 'pending') {
      this.options.log(`run ${runId} is no longer followed by this daemon; it is taken up again at its next start`)
      return
    }
    const outcome = summarize(tree)
    await this.options.state.update(data => {
      const run = data.runs.find(r => r.runId === runId)
      if (run !== undefined) Object.assign(run, outcome)
    })
    await this.#prune(active.jobId)
    this.options.onRunsChanged()
    this.options.log(`run ${runId} (${jobName === undefined ? tree.message : `job "${terminalSafeLine(jobName)}"`}) ended ${outcomeLine(tree)}`)
  }

  /** Keeps the newest `keepRunsPerJob` runs of the job (restores count as one job). */
  async #prune(jobId: string | undefined): Promise<void> {
    const keep = this.options.state.data.settings.keepRunsPerJob
    const same = this.options.state.data.runs.filter(run => run.jobId === jobId && run.status !== 'pending')
    if (same.length <= keep) return
    const dropped = new Set(same.slice(0, same.length - keep).map(run => run.runId))
    await this.options.state.update(data => {
      data.runs = data.runs.filter(run => !dropped.has(run.runId))
    })
    for (const runId of dropped) await unlink(join(this.options.store.dir, `${runId}.json`)).catch(() => {})
  }
}

/** A run's status for the daemon's log, with the reason when it did not succeed (the root's error, e.g. "cancelled: the daemon was stopped (SIGTERM)"). */
function outcomeLine(tree: TaskNode): string {
  const message = (tree.result as { message?: unknown } | undefined)?.message
  const outcome = tree.status === 'success' || typeof message !== 'string' ? tree.status : `${tree.status}: ${terminalSafeLine(message)}`
  return tree.healthCheck === undefined ? outcome : `${outcome}, health check ${tree.healthCheck}`
}

/** The index fields of a finished run: status, its health checks', end, VMs and bytes written (a health check's restore writes no backup). */
export function summarize(tree: TaskNode): Pick<RunSummary, 'status' | 'healthCheck' | 'checkedBackups' | 'end' | 'vms' | 'size'> {
  let vms = 0
  let size = 0
  const checkedBackups: NonNullable<RunSummary['checkedBackups']> = []
  const walk = (node: TaskNode) => {
    if (node.message === HEALTH_CHECK_TASK) {
      const backupId = node.data?.backupId ?? node.tasks?.find(child => child.message === 'restore')?.data?.backupId
      if (typeof backupId === 'string') checkedBackups.push({ backupId: backupId.replace(/^\//, ''), status: node.status })
      // What a check inside a backup run restores is no backup: only a health check run counts its bytes.
      if (node !== tree) return
    }
    if (node.data?.type === 'VM') vms++
    const result = node.result as { size?: unknown } | undefined
    if (node.message === 'transfer' && typeof result?.size === 'number') size += result.size
    for (const child of node.tasks ?? []) walk(child)
  }
  walk(tree)
  const healthCheck = tree.message === HEALTH_CHECK_TASK ? tree.status : tree.healthCheck
  return {
    status: tree.status, ...(healthCheck !== undefined && { healthCheck }), ...(checkedBackups.length > 0 && { checkedBackups }),
    ...(tree.end !== undefined && { end: tree.end }), vms, size,
  }
}
