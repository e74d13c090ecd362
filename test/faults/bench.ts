// The fault matrix's bench: a tiny lab, local remotes and the VM under test, the digests of every point a run
// snapshotted (the source disk as it was then), and the check that ends every row: each restore point listed on
// each remote restored into the lab and compared with its digests. Runs go through the engine in this process,
// through an engine in a child process (to kill it at a chosen step), or through a real daemon.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { startBackupRun } from '../../source/engine/index.ts'
import { DaemonClient } from '../../source/client/index.ts'
import { listVmBackups } from '../../source/repository/index.ts'
import type { TaskNode } from '../../source/tasks/index.ts'
import type { PoolConnection, XapiRecord } from '../../source/xapi/index.ts'
import { startDaemon, type DaemonProcess } from '../daemon/helpers.ts'
import { tempDir } from '../helpers/tools.ts'
import { jobSnapshots } from '../../source/engine/run/snapshots.ts'
import { describeFailure, job, liveDiskUuid, restoredDigests, startEngineLab, tasksOf, vmByName, vmDigests, type EngineLab } from '../engine/helpers.ts'

export const MiB = 1024 * 1024
export const JOB_ID = 'job-1'

/** How a run ended: its status, the codes of its failed tasks, its warnings (a killed process has no run: 'killed'). */
export interface RunOutcome { status: string; codes: string[]; warnings: string[]; tree?: TaskNode }

export function outcomeOf(tree: TaskNode): RunOutcome {
  const tasks = tasksOf(tree)
  const codes = tasks.filter(task => task.status !== 'success').map(task => (task.result as { code?: unknown } | undefined)?.code).filter(code => typeof code === 'string')
  return { status: tree.status, codes, warnings: tasks.flatMap(task => (task.warnings ?? []).map(warning => warning.message)), tree }
}

/** A run in flight: its task events so far (for faults timed on a step) and its end. */
export interface StartedRun { events: () => Array<{ type: string; properties?: { name: string } }>; done: Promise<RunOutcome> }

export interface BenchOptions { remotes?: string[]; mode?: 'full' | 'delta'; retention?: number; daemon?: boolean }

export class Bench {
  /** Digests of every disk of every snapshot a run took, by snapshot uuid. */
  readonly points = new Map<string, string[]>()
  private daemon: DaemonProcess | undefined
  private client: DaemonClient | undefined
  private daemonJobId: string | undefined
  private readonly extraDirs: Array<{ cleanup(): Promise<void> }> = []
  daemonDir = ''

  private constructor(readonly env: EngineLab, readonly vm: XapiRecord, readonly options: Required<Omit<BenchOptions, 'daemon'>> & { daemon: boolean }) {}

  static async open(options: BenchOptions = {}): Promise<Bench> {
    const env = await startEngineLab({ remotes: options.remotes ?? ['a'] })
    const bench = new Bench(env, vmByName(env.conns[0]!, 'tiny-running'), { remotes: options.remotes ?? ['a'], mode: options.mode ?? 'delta',
      retention: options.retention ?? 3, daemon: options.daemon ?? false })
    if (bench.options.daemon) await bench.startDaemon()
    return bench
  }

  get conn(): PoolConnection {
    return this.env.conns[0]!
  }

  get control() {
    return this.env.lab.control
  }

  jobInput() {
    return { id: JOB_ID, name: 'fault job', mode: this.options.mode, vms: { uuids: [this.vm.uuid as string] }, remotes: this.options.remotes,
      schedules: [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: this.options.retention, snapshots: 1 } }] }
  }

  /** A guest write on the VM's disk, so that each point differs from the one before. */
  async write(seed: number): Promise<void> {
    await this.control.writeVdi(liveDiskUuid(this.env, this.vm), { offset: (seed % 10) * 3 * MiB, length: 4 * MiB, seed })
  }

  /** Starts a run of the job (through the daemon on a daemon bench). */
  start(): StartedRun {
    if (this.client !== undefined) return this.startThroughDaemon()
    const run = startBackupRun(job({ ...this.jobInput(), vms: { uuids: [this.vm.uuid as string] } }), this.env.context)
    return { events: () => run.log.events as never, done: run.done.then(outcomeOf) }
  }

  /** One run to its end; its snapshot's digests recorded. */
  async run(): Promise<RunOutcome> {
    const outcome = await this.start().done
    await this.record()
    return outcome
  }

  /** A run that must succeed (the ones before the fault and the one after it). */
  async runOk(what: string): Promise<RunOutcome> {
    const outcome = await this.run()
    assert.equal(outcome.status, 'success', `${what}: ${outcome.tree === undefined ? outcome.codes.join() : describeFailure(outcome.tree)}`)
    return outcome
  }

  /** Records the newest snapshot of the job, if the last run left one: the source as that restore point saw it. */
  async record(): Promise<void> {
    await this.conn.sync()
    const snapshot = jobSnapshots(this.conn, this.conn.get('VM', this.vm.uuid as string), this.jobId()).at(-1)?.record
    if (snapshot !== undefined && !this.points.has(snapshot.uuid as string)) this.points.set(snapshot.uuid as string, await vmDigests(this.conn, snapshot))
  }

  /** Every restore point listed on every remote, restored into the lab and compared disk by disk; returns how many. */
  async verifyEveryPoint(): Promise<number> {
    let restored = 0
    for (const name of this.options.remotes) {
      for (const backup of await listVmBackups(this.env.remotes.get(name)!, this.vm.uuid as string)) {
        const expected = this.points.get(backup.vmSnapshot.uuid)
        assert.ok(expected !== undefined, `${name}: restore point ${backup.id} is of a snapshot no run recorded (${backup.vmSnapshot.uuid})`)
        assert.deepEqual(await restoredDigests(this.env, name, backup), expected, `${name}: restore point ${backup.id} gives back its snapshot's bytes`)
        restored++
      }
    }
    return restored
  }

  jobId(): string {
    return this.daemonJobId ?? JOB_ID
  }

  /** A folder removed with the bench. */
  async tempDir(prefix: string): Promise<string> {
    const dir = await tempDir(prefix)
    this.extraDirs.push(dir)
    return dir.path
  }

  // --- the daemon runner -------------------------------------------------------------------------------------------

  async startDaemon(): Promise<DaemonProcess> {
    if (this.daemonDir === '') {
      this.daemonDir = join(await this.tempDir('lifeboat-fault-daemon-'), 'data')
      await mkdir(this.daemonDir)
    }
    this.daemon = await startDaemon(this.daemonDir)
    this.client = await DaemonClient.connect(this.daemon.socket)
    if (this.daemonJobId === undefined) {
      const pool = this.env.lab.pools[0]!
      await this.client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
      for (const name of this.options.remotes) await this.client.call('remote.add', { name, url: `file://${this.env.remoteDirs.get(name)}` })
      const { id: _id, ...input } = this.jobInput()
      this.daemonJobId = (await this.client.call('job.create', { job: input as never })).job.id as string
    }
    return this.daemon
  }

  get daemonProcess(): DaemonProcess {
    if (this.daemon === undefined) throw new Error('no daemon on this bench')
    return this.daemon
  }

  /** Stops the daemon with a signal and waits for it to exit. */
  async stopDaemon(signal: 'SIGTERM' | 'SIGKILL'): Promise<number | string> {
    const daemon = this.daemonProcess
    this.client?.close()
    this.client = undefined
    daemon.child.kill(signal)
    return daemon.exited
  }

  /** The daemon's view of a run. */
  async daemonRun(runId: string): Promise<{ summary: { status: string }; tree: TaskNode }> {
    return (await this.client!.call('run.get', { runId })) as never
  }

  /** A run started through the daemon; its end is read from the daemon, through a restart of it if a fault does one. */
  private startThroughDaemon(): StartedRun {
    let tree: TaskNode | undefined
    const started = this.client!.call('job.run', { id: this.daemonJobId! }).then(({ runId }) => runId)
    const done = (async () => {
      const runId = await started
      for (;;) {
        // Between a stop and the next start there is no daemon to ask: wait for the next one.
        const shown = this.client === undefined ? undefined : await this.daemonRun(runId).catch(() => undefined)
        if (shown !== undefined) {
          tree = shown.tree
          if (shown.summary.status !== 'pending') return outcomeOf(shown.tree)
        }
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    })()
    const events = () => (tree === undefined ? [] : tasksOf(tree).map(node => ({ type: 'start', properties: { name: node.message } })))
    return { events, done }
  }

  // --- the child-process runner --------------------------------------------------------------------------------------

  /**
   * One run in a child process that stops (and says so) at a step: the Nth write of a merge state, or the Nth
   * removal on the remote once the backup is committed (the clean-up); then killed with SIGKILL.
   */
  async runKilledAt(step: { mergeStateWrite: number } | { removal: number }): Promise<RunOutcome> {
    const pool = this.env.lab.pools[0]!
    const request = { pool: { url: pool.url, username: pool.username, password: pool.password }, remotes: Object.fromEntries(this.options.remotes.map(name => [name, this.env.remoteDirs.get(name)])),
      job: this.jobInput(), step }
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', CHILD_RUN, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'inherit'] })
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string]
    assert.equal(line, 'REACHED', `the child run reached ${JSON.stringify(step)}`)
    child.kill('SIGKILL')
    await once(child, 'exit')
    await this.record()
    return { status: 'killed', codes: [], warnings: [] }
  }

  async close(): Promise<void> {
    if (this.daemon !== undefined && this.daemon.child.exitCode === null && this.daemon.child.signalCode === null) await this.stopDaemon('SIGTERM')
    await this.env.cleanup()
    for (const dir of this.extraDirs) await dir.cleanup()
  }
}

/** The child of runKilledAt: the engine on remotes that hang, and say REACHED, at the chosen step. */
const CHILD_RUN = `
  import { LocalHandler } from './source/storage/index.ts'
  import { PoolConnection } from './source/xapi/index.ts'
  import { startBackupRun } from './source/engine/index.ts'
  import { parseJob } from './source/engine/jobs/index.ts'
  const { pool, remotes, job, step } = JSON.parse(process.argv.at(-1))
  let mergeStateWrites = 0
  let removals = 0
  let committed = false
  const reached = () => { process.stdout.write('REACHED\\n'); return new Promise(() => {}) }
  class StopsAtStep extends LocalHandler {
    writeFile(path, data, options) {
      if (/\\.merge\\.json$/.test(path) && ++mergeStateWrites === step.mergeStateWrite) return super.writeFile(path, data, options).then(reached)
      // The backup's metadata: written last, so the backup is committed once it is there.
      if (/\\/\\d{8}T\\d{6}Z\\.json$/.test(path)) committed = true
      return super.writeFile(path, data, options)
    }
    unlink(path) {
      if (committed && ++removals === step.removal) return reached()
      return super.unlink(path)
    }
  }
  const handlers = new Map()
  for (const [name, dir] of Object.entries(remotes)) {
    const handler = new StopsAtStep(dir)
    await handler.sync()
    handlers.set(name, handler)
  }
  const conn = await PoolConnection.connect(pool)
  const tree = await startBackupRun(parseJob(job), { pools: new Map([[conn.poolUuid, conn]]), remotes: handlers }).done
  process.stdout.write('FINISHED ' + tree.status + '\\n')
`

/** Waits until the run has started the step named (a task of that name exists). */
export async function untilStep(run: StartedRun, name: string): Promise<void> {
  for (let i = 0; i < 800; i++) {
    if (run.events().some(event => event.type === 'start' && event.properties?.name === name)) return
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  throw new Error(`the run never started a "${name}" step`)
}
