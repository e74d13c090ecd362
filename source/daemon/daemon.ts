// The daemon put together: state, pools, remotes, runs, scheduler, lanes and the socket; start-up
// (interrupted runs, crash clean-up) and a clean stop that cancels the runs in progress.
import { join, resolve } from 'node:path'
import { readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { randomUUID } from 'node:crypto'
import { RunLogStore, type TaskEvent } from '../tasks/index.ts'
import { LifeboatError } from '../util/errors.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'
import { sleep } from '../util/abort.ts'
import { cleanFileRestoreLeftovers, cleanupAfterCrash, planBackupRun, startBackupRun, startMirrorRun, startVerifyRun, type EngineContext, type VerifiedBackup, type VerifyRequest } from '../engine/index.ts'
import type { JobPlan } from '../protocol/plan.ts'
import type { TaskNode } from '../tasks/index.ts'
import { parseJob, resolveSettings, type Job } from '../protocol/job.ts'
import { FileRestoreSessions } from './file-restore.ts'
import { methodParams, type JobInfo, type DaemonInfo, type MethodName, type RunSummary } from '../protocol/methods.ts'
import type { StateKind } from '../protocol/events.ts'
import { DaemonState, type StoredJob } from './state.ts'
import { Pools, withoutUrlCredentials } from './pools.ts'
import { Remotes } from './remotes.ts'
import { Proxies } from './proxies.ts'
import { PROXY_RUN_PROPERTY, startDelegatedRun } from './delegated-run.ts'
import { BackendHandler, decorate, openRemote } from '../storage/index.ts'
import { ProxiedBackend } from './proxy-storage.ts'
import { Runs } from './runs.ts'
import { Verifications } from './verifications.ts'
import { Scheduler, systemClock, type Clock, type ScheduleEntry } from './scheduler.ts'
import { LanesWatcher, lanesSnapshot } from './lanes.ts'
import { RemoteLanes } from '../engine/run/remote-lanes.ts'
import { RpcServer } from './server.ts'
import { buildHandlers } from './handlers.ts'
import { lockDataDir, type DataDirLock } from './lock.ts'
import { checkJob } from './job-checks.ts'
import { listSrs } from './inventory.ts'
import { PoolLimitsRegistry } from '../xapi/index.ts'

export interface DaemonOptions {
  dataDir: string
  socketPath?: string
  clock?: Clock
  /** Run logs kept per job (stored in the state; default 100). */
  keepRunsPerJob?: number
  /** Whether scheduled runs are planned first (remembered in the state). */
  planScheduledRuns?: boolean
  /** Where the daemon's own log lines go (journald reads stderr). */
  log?: (line: string) => void
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** How many of a job's last runs its plan reads its estimates from. */
const PLAN_HISTORY_RUNS = 10

export class Daemon {
  readonly dataDir: string
  readonly socketPath: string
  readonly startedAt = Date.now()
  readonly log: (line: string) => void
  readonly pools: Pools
  readonly remotes: Remotes
  /** The proxies runs can be delegated to (ssh, pinned host keys, the daemon's own key in <data>/ssh). */
  readonly proxies: Proxies
  /** The pool limits of this process, shared by every pool connection, run and the lanes view. */
  readonly poolLimits = new PoolLimitsRegistry()
  /** The reads of remotes by runs without a pool (mirror, verify), shown in the lanes view beside the pools. */
  readonly remoteLanes = new RemoteLanes()
  readonly runs: Runs
  readonly verifications: Verifications
  readonly scheduler: Scheduler
  readonly server: RpcServer<MethodName>
  readonly lanes: LanesWatcher
  /** Restore points opened for file-level restore; their kernel mounts live under <data>/file-restore. */
  readonly fileRestore: FileRestoreSessions
  /** Runs wait for the crash clean-up: it removes temporary snapshots, which a new run would also have. */
  cleanedUp: Promise<void> = Promise.resolve()
  #stopping: Promise<void> | undefined
  readonly #stopped = new AbortController()

  private constructor(
    readonly state: DaemonState,
    private readonly lock: DataDirLock,
    options: DaemonOptions,
  ) {
    this.dataDir = resolve(options.dataDir)
    this.socketPath = resolve(options.socketPath ?? join(this.dataDir, 'lifeboat.sock'))
    // One record a line, readable in a terminal and by journald: a NUL (SMB URLs), an escape or a newline from a remote would not be.
    this.log = options.log ?? (line => process.stderr.write(`${new Date().toISOString()} ${terminalSafeLine(line)}\n`))
    // Failed storage operations (each retry) go to the daemon's log, with the remote's masked URL.
    this.remotes = new Remotes((url, proxy) =>
      proxy === undefined ? openRemote(url, { log: this.log }) : new BackendHandler(decorate(new ProxiedBackend(url, proxy, name => this.proxies.storageChannel(name)), { log: this.log })),
    )
    this.proxies = new Proxies(state, this.dataDir, VERSION, this.log)
    this.pools = new Pools({
      limits: this.poolLimits,
      log: this.log,
      onChange: () => {
        this.lanes.refresh(this.pools.connections.keys())
        this.stateChanged('pools')
      },
    })
    this.runs = new Runs({
      state,
      store: new RunLogStore(join(this.dataDir, 'runs')),
      log: this.log,
      onTaskEvent: (runId, event, seq) => this.#publishTaskEvent(runId, event, seq),
      onRunsChanged: () => {
        this.stateChanged('runs')
        this.stateChanged('jobs')
      },
    })
    this.verifications = new Verifications(state)
    this.scheduler = new Scheduler((entry, at) => void this.#scheduledRun(entry, at), options.clock ?? systemClock)
    this.fileRestore = new FileRestoreSessions(join(this.dataDir, 'file-restore'), this.log)
    this.server = new RpcServer({ socketPath: this.socketPath, methods: methodParams, handlers: buildHandlers(this) })
    this.lanes = new LanesWatcher(this.poolLimits, () => {
      const snapshot = lanesSnapshot(this.poolLimits, this.laneNames, Date.now(), this.remoteLanes)
      this.server.broadcast('lanes', { snapshot }, client => client.topics.has('lanes'))
    }, this.remoteLanes)
  }

  static async start(options: DaemonOptions): Promise<Daemon> {
    const dataDir = resolve(options.dataDir)
    await mkdir(dataDir, { recursive: true, mode: 0o700 })
    // Before anything is read: a second daemon here would mark the first one's runs interrupted and fire its schedules too.
    const lock = await lockDataDir(dataDir)
    try {
      const state = await DaemonState.open(dataDir)
      if (options.keepRunsPerJob !== undefined) await state.update(data => void (data.settings.keepRunsPerJob = options.keepRunsPerJob!))
      if (options.planScheduledRuns !== undefined) await state.update(data => void (data.settings.planScheduledRuns = options.planScheduledRuns!))
      const daemon = new Daemon(state, lock, options)
      await daemon.#startUp()
      return daemon
    } catch (error) {
      await lock.release()
      throw error
    }
  }

  get context(): EngineContext {
    return { pools: this.pools.connections, remotes: this.remotes.handlers, remoteLanes: this.remoteLanes }
  }

  get info(): DaemonInfo {
    return { version: VERSION, pid: process.pid, dataDir: this.dataDir, socket: this.socketPath, startedAt: this.startedAt, readonly: false }
  }

  readonly laneNames = {
    poolName: (poolId: string) => this.pools.list().find(pool => pool.id === poolId)?.name ?? poolId,
    jobName: (jobId: string) => this.state.data.jobs.find(stored => stored.job.id === jobId)?.job.name,
  }

  stateChanged(kind: StateKind): void {
    this.server.broadcast('state.changed', { kind }, client => client.topics.has('state'))
  }

  // ---- jobs

  findJob(idOrName: string): StoredJob {
    const jobs = this.state.data.jobs
    const stored = jobs.find(s => s.job.id === idOrName) ?? jobs.find(s => s.job.name === idOrName)
    if (stored === undefined) throw new LifeboatError('JOB_NOT_FOUND', `No job has the id or name "${idOrName}"; 'npx lifeboat job list' shows them.`)
    return stored
  }

  jobInfo(stored: StoredJob): JobInfo {
    const id = stored.job.id!
    const running = this.runs.runningRunOf(id)
    const lastRun = this.runs.list({ jobId: id, limit: 1 })[0]
    const nextRun = stored.enabled ? this.scheduler.nextRun(id) : undefined
    return { job: stored.job, enabled: stored.enabled, ...(running !== undefined && { running }), ...(lastRun !== undefined && { lastRun }), ...(nextRun !== undefined && { nextRun }) }
  }

  /** Validates a job and gives it (and its schedules) ids; an update keeps the ids of schedules it keeps. */
  prepareJob(input: unknown, previous?: Job): Job {
    const remotes = new Map(this.state.data.remotes.map(remote => [remote.name, { freeSpaceKnown: this.remotes.freeSpaceKnown(remote.name), proxy: remote.proxy }]))
    const job = checkJob(parseJob(input), { remotes, pools: this.pools.list(), srs: listSrs([...this.pools.connections.values()]), unusableSrs: listSrs([...this.pools.connections.values()], 'unusable'), proxies: new Set(this.state.data.proxies.map(proxy => proxy.name)) })
    const other = this.state.data.jobs.find(s => s.job.name === job.name && s.job.id !== previous?.id)
    if (other !== undefined) throw new LifeboatError('JOB_NAME_TAKEN', `Another job is already named "${job.name}"; choose another name.`)
    return {
      ...job,
      id: previous?.id ?? randomUUID(),
      schedules: job.schedules.map(schedule => ({ ...schedule, id: schedule.id ?? previous?.schedules.find(s => s.name === schedule.name)?.id ?? randomUUID() })),
    }
  }

  refreshSchedules(): void {
    const entries: ScheduleEntry[] = []
    for (const stored of this.state.data.jobs) {
      if (!stored.enabled) continue
      for (const schedule of stored.job.schedules) {
        if (schedule.enabled) entries.push({ jobId: stored.job.id!, scheduleId: schedule.id!, cron: schedule.cron, timezone: schedule.timezone })
      }
    }
    this.scheduler.setSchedules(entries)
  }

  /** The plan of the job's next run of a schedule (job.plan): the engine's decisions, from the kept logs of its last runs. */
  async planJob(stored: StoredJob, schedule?: string): Promise<JobPlan> {
    const job = { ...stored.job, id: stored.job.id! }
    if (job.type === 'verify') throw new LifeboatError('PLAN_NOT_FOR_VERIFY', `The job "${job.name}" verifies backups: it takes no snapshot and exports nothing, there is nothing to plan. 'npx lifeboat backup list --remote ${job.remotes[0]}' shows what it reads and how each backup was last verified.`)
    if (job.type === 'mirror') throw new LifeboatError('PLAN_NOT_FOR_MIRROR', `The job "${job.name}" is a mirror: it copies the backups already on its source remote, there is no snapshot or export to plan. 'npx lifeboat backup list --remote ${job.sourceRemote}' shows what it would copy.`)
    const history: TaskNode[] = []
    for (const run of this.runs.list({ jobId: job.id, limit: PLAN_HISTORY_RUNS })) {
      if (run.status === 'pending') continue
      const tree = await this.runs.tree(run.runId).catch(() => undefined)
      if (tree !== undefined) history.push(tree)
    }
    const disconnectedPools = this.pools.list().filter(pool => pool.status !== 'connected').map(pool => ({ id: pool.id, name: pool.name, reason: pool.error?.message ?? pool.status }))
    const busy = this.runs.activeJobs().flatMap(({ runId, jobId }) => {
      const other = this.state.data.jobs.find(candidate => candidate.job.id === jobId)?.job
      if (other === undefined) return []
      const sameJob = jobId === job.id
      return [{ runId, jobName: other.name, sameJob, remotes: other.remotes.filter(name => job.remotes.includes(name)), srs: other.srs.filter(uuid => job.srs.includes(uuid)) }]
    })
    const remoteProblems = new Map(job.remotes.flatMap(name => {
      const problem = this.remotes.problem(name)
      return problem === undefined ? [] : [[name, problem] as const]
    }))
    const plan = await planBackupRun(job, this.context, { ...(schedule !== undefined && { schedule }), history, disconnectedPools, busy, remoteProblems })
    if (!stored.enabled) {
      delete plan.nextRun
      plan.problems.unshift({ code: 'JOB_DISABLED', severity: 'warning', message: `The job "${job.name}" is disabled: its schedules do not fire.`, remedy: `Enable it with 'npx lifeboat job enable ${job.name}', or run it by hand.` })
    }
    return plan
  }

  async runJob(stored: StoredJob, schedule?: string, options: { planFirst?: boolean } = {}): Promise<string> {
    await this.cleanedUp
    const job = stored.job
    const chosen = schedule === undefined ? job.schedules[0]! : job.schedules.find(s => s.name === schedule || s.id === schedule)
    if (chosen === undefined) throw new LifeboatError('SCHEDULE_NOT_FOUND', `The job "${job.name}" has no schedule "${schedule}"; its schedules are ${job.schedules.map(s => `"${s.name}"`).join(', ')}.`)
    const info = { jobId: job.id!, jobName: job.name, scheduleName: chosen.name }
    if (job.type === 'verify') {
      const runId = await this.startVerify({ remotes: job.remotes, vms: 'uuids' in job.vms ? job.vms.uuids : [], readData: job.readData === true, timeout: resolveSettings(job, chosen).timeout }, info)
      this.log(`job "${job.name}": run ${runId} started (schedule "${chosen.name}")`)
      return runId
    }
    const plan = options.planFirst === true && job.type !== 'mirror' ? await this.planJob(stored, chosen.id).catch(error => void this.log(`job "${job.name}": the plan before the run failed: ${(error as Error).message}`)) : undefined
    const common = { schedule: chosen.id ?? chosen.name }
    if (job.proxy !== undefined) {
      const runId = await this.runs.start('backup', { ...info, proxy: job.proxy }, onEvent => this.#delegatedRun(job, common.schedule, onEvent))
      this.log(`job "${job.name}": run ${runId} started on the proxy "${job.proxy}" (schedule "${chosen.name}")`)
      return runId
    }
    const runId = await this.runs.start(job.type === 'mirror' ? 'mirror' : 'backup', info, onEvent =>
      job.type === 'mirror'
        ? startMirrorRun(job, this.context, { ...common, onEvent, distributedJobs: this.#distributedJobs() })
        : startBackupRun(job, this.context, { ...common, onEvent, ...(plan !== undefined && { plan }) }),
    )
    this.log(`job "${job.name}": run ${runId} started (schedule "${chosen.name}")`)
    return runId
  }

  /**
   * A backup run on the job's proxy: the job and its schedule, with the credentials of the run (its pools'
   * passwords, its remotes' URLs): the pools of its smart selection, else every pool (the proxy selects the VMs).
   */
  #delegatedRun(job: Job, schedule: string, onEvent: (event: TaskEvent) => void) {
    const wanted = 'smart' in job.vms && job.vms.smart.pools.length > 0 ? new Set(job.vms.smart.pools) : undefined
    const pools = this.state.data.pools.filter(pool => wanted === undefined || wanted.has(pool.id)).map(pool => ({ url: pool.url, username: pool.username, password: this.state.poolPassword(pool.id) ?? '' }))
    const remotes = job.remotes.map(name => ({ name, url: this.state.remoteUrl(name) ?? '' })).filter(remote => remote.url !== '')
    const schedules = job.schedules.find(s => s.id === schedule || s.name === schedule)!
    return startDelegatedRun(this.proxies, {
      proxy: job.proxy!,
      root: { name: 'backup run', data: { jobId: job.id!, jobName: job.name, mode: job.mode, scheduleId: schedules.id ?? schedules.name, scheduleName: schedules.name } },
      spec: { job, schedule, pools, remotes },
      onEvent,
      log: this.log,
      limits: this.poolLimits,
      cleanUp: this.#cleanUpLostRun(job.id!),
    })
  }

  /**
   * Start-up: the runs an earlier process of this daemon delegated to proxies and left going (it stopped, or
   * died) are followed again, from their logs' root (its data and the proxy's run id): their index entries and logs.
   */
  async #delegatedRunsLeft(): Promise<Array<{ summary: RunSummary; tree: TaskNode }>> {
    const left: Array<{ summary: RunSummary; tree: TaskNode }> = []
    for (const summary of this.state.data.runs) {
      if (summary.status !== 'pending' || summary.proxy === undefined) continue
      const tree = await this.runs.tree(summary.runId).catch(() => undefined)
      if (tree?.status === 'pending' && typeof tree.properties?.[PROXY_RUN_PROPERTY] === 'string') left.push({ summary, tree })
    }
    return left
  }

  async #resumeDelegatedRun({ summary, tree }: { summary: RunSummary; tree: TaskNode }): Promise<void> {
    const { proxy: _proxy, ...data } = tree.data ?? {}
    await this.runs.resume(summary, onEvent =>
      startDelegatedRun(this.proxies, {
        proxy: summary.proxy!,
        root: { name: tree.message, data },
        resume: { id: tree.id, start: tree.start, proxyRunId: tree.properties![PROXY_RUN_PROPERTY] as string },
        onEvent,
        log: this.log,
        limits: this.poolLimits,
        ...(summary.jobId !== undefined && { cleanUp: this.#cleanUpLostRun(summary.jobId) }),
      }),
    )
  }

  /** What a run lost with its proxy left, cleaned by the appliance (which has the credentials): its job's snapshots, its VMs' blocks and folders on the job's remotes. */
  #cleanUpLostRun(jobId: string): (vms: ReadonlySet<string>) => Promise<string[]> {
    return vms => {
      const remotes = new Set(this.state.data.jobs.find(stored => stored.job.id === jobId)?.job.remotes ?? [])
      return cleanupAfterCrash(this.context, { only: { jobId, vms, remotes } })
    }
  }

  /** The jobs whose backups a mirror skips: they distribute them over several remotes, so no remote has their chains whole. */
  #distributedJobs(): Set<string> {
    return new Set(this.state.data.jobs.filter(stored => stored.job.settings.distributeBackups === true).map(stored => stored.job.id!))
  }

  /** A verify run (by hand or of a verify job); each backup's verdict is kept in the state as it comes. */
  async startVerify(request: Omit<VerifyRequest, 'onVerdict'>, info: { jobId?: string; jobName?: string; scheduleName?: string } = {}): Promise<string> {
    return this.runs.start('verify', info, onEvent => {
      const judged: VerifiedBackup[] = []
      let runId = ''
      const started = startVerifyRun(this.context, { ...request, onVerdict: verdict => (judged.push(verdict), this.verifications.record(runId, request.readData === true, verdict)) }, { onEvent })
      runId = started.runId
      // Recorded before the run counts as ended, so that a client seeing its end finds the states.
      const done = started.done.then(async tree => {
        await this.verifications.finish(judged, tree.status === 'success' || tree.status === 'failure').catch(error => this.log(`run ${runId}: cannot record the verification states: ${(error as Error).message}`))
        return tree
      })
      return { ...started, done }
    })
  }

  async #scheduledRun(entry: ScheduleEntry, at: number): Promise<void> {
    const stored = this.state.data.jobs.find(s => s.job.id === entry.jobId)
    if (stored === undefined) return
    const running = this.runs.runningRunOf(entry.jobId)
    if (running !== undefined) {
      this.log(`job "${stored.job.name}": the run due at ${new Date(at).toISOString()} is skipped: run ${running} is still going`)
      return
    }
    try {
      await this.runJob(stored, entry.scheduleId, { planFirst: this.state.data.settings.planScheduledRuns !== false })
    } catch (error) {
      this.log(`job "${stored.job.name}": the scheduled run could not start: ${(error as Error).message}`)
    }
  }

  #publishTaskEvent(runId: string, event: TaskEvent, seq: number): void {
    this.server.broadcast('task.event', { runId, event, seq }, client => client.topics.has('tasks') && (client.runId === undefined || client.runId === runId))
  }

  // ---- life cycle

  async #startUp(): Promise<void> {
    const delegated = await this.#delegatedRunsLeft()
    const interrupted = await this.runs.markInterrupted('the daemon stopped while this run was in progress (crash, kill or power loss); its leftovers are cleaned up at start-up', new Set(delegated.map(run => run.summary.runId)))
    for (const runId of interrupted) this.log(`run ${runId}: marked interrupted`)
    for (const remote of this.state.data.remotes) {
      const url = this.state.remoteUrl(remote.name)
      if (url === undefined) {
        this.log(`remote "${remote.name}": its URL is missing from secrets.json; add the remote again`)
        continue
      }
      // A remote on a proxy is opened in the background: a proxy out of reach does not hold the daemon's start.
      await this.remotes.open(remote.name, url, { proxy: remote.proxy, inBackground: remote.proxy !== undefined }).catch(error => this.log(`remote "${remote.name}": ${(error as Error).message}`))
    }
    if (this.state.data.pools.some(pool => withoutUrlCredentials(pool.url) !== pool.url)) {
      await this.state.update(data => void (data.pools = data.pools.map(pool => ({ ...pool, url: withoutUrlCredentials(pool.url) }))))
      this.log('the credentials stored in pool URLs were removed from the state (the secrets file holds the passwords)')
    }
    for (const line of await cleanFileRestoreLeftovers(join(this.dataDir, 'file-restore'))) this.log(`file restore clean-up: ${line}`)
    for (const pool of this.state.data.pools) this.pools.manage(pool, this.state.poolPassword(pool.id) ?? '')
    // Followed again before the schedules fire: a job whose run goes on on a proxy is running.
    for (const run of delegated) await this.#resumeDelegatedRun(run)
    this.refreshSchedules()
    await this.server.listen()
    this.cleanedUp = this.#cleanUp(new Set(delegated.flatMap(run => (run.summary.jobId === undefined ? [] : [run.summary.jobId]))))
    this.log(`lifeboat ${VERSION} daemon listening on ${this.socketPath} (data ${this.dataDir})`)
  }

  /** `spareJobs`: the jobs of the runs taken up again on proxies: their snapshots and blocks are in use there. */
  async #cleanUp(spareJobs: ReadonlySet<string>): Promise<void> {
    // Give the stored pools a moment to connect, so their leftover snapshots are seen.
    const signal = this.#stopped.signal
    const deadline = Date.now() + 30_000
    while (this.pools.list().some(pool => pool.status === 'connecting') && Date.now() < deadline && !signal.aborted) await sleep(200, signal).catch(() => {})
    if (signal.aborted) return
    try {
      for (const line of await cleanupAfterCrash(this.context, { signal, spareJobs })) this.log(`clean-up: ${line}`)
    } catch (error) {
      this.log(`clean-up ${signal.aborted ? 'stopped' : 'failed'}: ${(error as Error).message}`)
    }
  }

  /** Leaves the runs delegated to proxies going there (followed again at the next start), cancels the others (their logs say why), closes the socket and the connections. */
  stop(reason = 'the daemon is stopping'): Promise<void> {
    this.#stopping ??= (async () => {
      this.scheduler.stop()
      this.lanes.stop()
      this.#stopped.abort()
      await this.cleanedUp
      // A run delegated to a proxy goes on there: it is left going, and followed again at the next start.
      const detached = await this.runs.detachAll(10_000)
      if (detached > 0) this.log(`${detached} run(s) delegated to proxies go on there; the next start follows them again`)
      if (this.runs.activeCount > 0) this.log(`cancelling ${this.runs.activeCount} run(s): ${reason}`)
      await this.runs.cancelAll(reason, 60_000)
      await this.fileRestore.closeAll()
      await this.server.close()
      await this.pools.closeAll()
      await this.remotes.closeAll()
      this.proxies.closeChannels()
      await this.lock.release()
    })()
    return this.#stopping
  }
}
