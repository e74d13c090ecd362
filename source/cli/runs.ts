// `lifeboat run list|show|cancel` and `logs [RUNID] [--follow]`: what ran, how it went, live or after the fact;
// and the waiting that `job run --wait` and `restore --wait` share.
import type { DaemonClient } from '../client/index.ts'
import { LifeboatError } from '../util/errors.ts'
import { RUN_STATUSES, healthCheckText, runStatusText, type LanesSnapshot, type RunStatus, type RunSummary, type TaskNode } from '../protocol/methods.ts'
import type { TaskEvent } from '../protocol/events.ts'
import { EXIT_FAILURE, EXIT_OK, EXIT_UNVERIFIED, UsageError, errorLine } from './command.ts'
import { LiveRunLines, printText, progressLine, formatBytes, formatDate, formatElapsed, table, tree } from './output.ts'
import { integerOption, stringOption, type CommandContext, type Subcommand } from './index.ts'

/**
 * Follows a run to its end: the tree so far, then each newer event (passed to `onEvent`), told apart
 * from those the tree holds by their sequence number. Resolves with the final tree.
 */
export async function followRun(client: DaemonClient, runId: string, onEvent?: (event: TaskEvent) => void, onTree?: (tree: TaskNode) => void, onLanes?: (snapshot: LanesSnapshot) => void): Promise<TaskNode> {
  let folded: number | undefined
  const early: Array<{ event: TaskEvent; seq: number }> = []
  let finished: (() => void) | undefined
  const ended = new Promise<void>(resolve => (finished = resolve))
  const deliver = (event: TaskEvent, seq: number) => {
    if (seq < folded!) return
    onEvent?.(event)
    if (event.type === 'end' && event.id === runId) finished!()
  }
  const stopEvents = client.onNotification('task.event', ({ runId: id, event, seq }) => {
    if (id !== runId) return
    if (folded === undefined) early.push({ event, seq })
    else deliver(event, seq)
  })
  // After dropped notifications, only the run's state can be trusted: check it again.
  const stopResync = client.onNotification('resync', () => {
    void client.call('run.get', { runId }).then(({ tree }) => tree.status !== 'pending' && finished!(), () => {})
  })
  const stopLanes = onLanes === undefined ? undefined : client.onNotification('lanes', ({ snapshot }) => onLanes(snapshot))
  const onClose = () => finished!()
  client.once('close', onClose)
  try {
    await client.subscribe(onLanes === undefined ? ['tasks'] : ['tasks', 'lanes'], runId)
    const first = await client.call('run.get', { runId })
    folded = first.eventCount ?? Infinity
    onTree?.(first.tree)
    for (const { event, seq } of early.splice(0)) deliver(event, seq)
    if (first.tree.status === 'pending') await ended
    if (!client.connected) throw new LifeboatError('DAEMON_DISCONNECTED', `The daemon went away while following run ${runId}; see 'systemctl status lifeboat', then 'npx lifeboat run show ${runId}'.`)
    return (await client.call('run.get', { runId })).tree
  } finally {
    stopEvents()
    stopResync()
    stopLanes?.()
    client.off('close', onClose)
  }
}

// A transfer's progress line at most this often (and once at its end), so that a long export stays readable.
const PROGRESS_EVERY_MS = 5000

/**
 * Follows a run and prints it live on `stream`: each event naming its VM, and the progress of its transfers
 * (from the lanes). Resolves with the final tree.
 */
export function followAndPrint(client: DaemonClient, runId: string, stream: NodeJS.WritableStream, onTree?: (tree: TaskNode) => void): Promise<TaskNode> {
  const lines = new LiveRunLines()
  const printed = new Map<string, { at: number; finished: boolean }>()
  return followRun(
    client,
    runId,
    event => {
      const line = lines.line(event)
      if (line !== undefined) printText(line + '\n', stream)
    },
    node => {
      onTree?.(node)
      lines.learnTree(node)
    },
    snapshot => {
      for (const pool of snapshot.pools) {
        for (const holder of [...pool.vdiExports.holders, ...pool.vmExports.holders]) {
          if (holder.runId !== runId || holder.done === undefined) continue
          const key = `${holder.vm}/${holder.disk ?? ''}/${holder.phase}`
          const last = printed.get(key)
          const finished = holder.total !== undefined && holder.done >= holder.total
          if (last !== undefined && (last.finished || (!finished && snapshot.at - last.at < PROGRESS_EVERY_MS))) continue
          printed.set(key, { at: snapshot.at, finished })
          printText(progressLine(holder, snapshot.at) + '\n', stream)
        }
      }
    },
  )
}

/** `--wait`: follows the run (live lines on stderr), prints its tree (or JSON), exit 1 unless it succeeded. */
export async function waitAndReport(context: CommandContext, runId: string): Promise<number> {
  const client = await context.client()
  const final = context.json ? await followRun(client, runId) : await followAndPrint(client, runId, process.stderr)
  context.print({ runId, status: final.status, ...(final.healthCheck !== undefined && { healthCheck: final.healthCheck }), tree: final }, () => tree(final))
  if (final.status === 'success' && final.healthCheck !== undefined && final.healthCheck !== 'success') {
    process.stderr.write(`lifeboat: the run succeeded, but its ${healthCheckText(final.healthCheck)}: its backup exists and is not verified (see the health check in the tree)\n`)
    return EXIT_UNVERIFIED
  }
  if (final.status === 'success') return EXIT_OK
  // The reason on stderr as every failure is, for the administrator and for scripts alike.
  const reason = final.result as { code?: unknown; message?: unknown } | undefined
  if (typeof reason?.message === 'string') process.stderr.write(errorLine(reason))
  return EXIT_FAILURE
}

/** The runs as a table; a PROXY column (where each ran: a proxy, or '-' for the appliance) when one of them ran on a proxy. */
function summaryRows(runs: RunSummary[]): string {
  const proxies = runs.some(run => run.proxy !== undefined)
  return table(
    ['RUN', 'KIND', 'JOB', ...(proxies ? ['PROXY'] : []), 'SCHEDULE', 'START', 'DURATION', 'STATUS', 'VMS', 'SIZE'],
    runs.map(run => [
      run.runId, run.kind, run.jobName ?? '-', ...(proxies ? [run.proxy ?? '-'] : []), run.scheduleName ?? '-', formatDate(run.start),
      formatElapsed(run.end === undefined ? undefined : run.end - run.start), runStatusText(run), run.vms === undefined ? '-' : String(run.vms), formatBytes(run.size),
    ]),
  )
}

async function latestRun(client: DaemonClient): Promise<string> {
  const [latest] = await client.call('run.list', { limit: 1 })
  if (latest === undefined) throw new LifeboatError('RUN_NOT_FOUND', 'No run has happened yet; start one with npx lifeboat job run J.')
  return latest.runId
}

export const RUN_COMMANDS: Record<string, Record<string, Subcommand>> = {
  run: {
    list: {
      summary: 'Lists the runs, newest first.',
      options: {
        job: { value: 'J', help: "only this job's runs (id or name)" },
        status: { value: RUN_STATUSES.join('|'), help: 'only the runs with this status' },
        limit: { value: 'N', help: 'at most N runs (default 50, 0: all)' },
      },
      async body(context) {
        const status = stringOption(context, 'status')
        if (status !== undefined && !(RUN_STATUSES as readonly string[]).includes(status)) throw new UsageError(`--status is one of ${RUN_STATUSES.join(', ')}`)
        const limit = integerOption(context, 'limit') ?? 50
        const client = await context.client()
        const job = stringOption(context, 'job')
        const jobId = job === undefined ? undefined : (await client.call('job.get', { id: job })).job.id
        const runs = await client.call('run.list', { ...(jobId !== undefined && { jobId }), ...(status !== undefined && { status: status as RunStatus }), ...(limit > 0 && { limit }) })
        context.print(runs, () => summaryRows(runs) || 'no runs\n')
      },
    },
    show: {
      positionals: ['RUNID'],
      summary: "Shows a run's summary and task tree.",
      async body(context) {
        const run = await (await context.client()).call('run.get', { runId: context.positionals[0]! })
        context.print(run, () => summaryRows([run.summary]) + '\n' + tree(run.tree))
      },
    },
    cancel: {
      positionals: ['RUNID'],
      summary: 'Cancels a run.',
      notes: 'Its XAPI tasks, streams, temporary files and snapshots go; it is logged cancelled.',
      async body(context) {
        const result = await (await context.client()).call('run.cancel', { runId: context.positionals[0]! })
        context.print(result, () => `run ${context.positionals[0]} is being cancelled\n`)
      },
    },
  },
  logs: {
    '': {
      positionals: ['[RUNID]'],
      summary: "Prints a run's task tree (default: the latest run).",
      options: { follow: { short: 'f', help: 'then each event until the run ends, with transfer progress' } },
      async body(context) {
        const client = await context.client()
        const runId = context.positionals[0] ?? (await latestRun(client))
        if (context.values.follow !== true) {
          const { tree: node } = await client.call('run.get', { runId })
          context.print(node, () => tree(node))
          return
        }
        const final = context.json ? await followRun(client, runId) : await followAndPrint(client, runId, process.stdout, node => printText(tree(node)))
        context.print(final, () => `\nrun ${runId}: ${final.status}\n`)
      },
    },
  },
}
