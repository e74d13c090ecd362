// `lifeboat job create|list|show|run|delete`: backup jobs, from a JSON file (DESIGN.md's shape) or flags.
import { readFile } from 'node:fs/promises'
import { parseJson } from '../util/json.ts'
import type { JobInput } from '../protocol/job.ts'
import type { JobInfo } from '../protocol/methods.ts'
import { UsageError } from './command.ts'
import { formatDate, table } from './output.ts'
import { integerOption, listOption, stringOption, type CommandContext, type Subcommand } from './index.ts'
import { waitAndReport } from './runs.ts'

const CREATE_FLAGS = `--name N --mode full|delta (--vm UUID… | [--pool P…] [--tag T…] [--not-tag T…]) --remote R… [--sr SR…]
      [--cron "0 3 * * *"] [--timezone Europe/Paris] [--retention N] [--concurrency N] [--disabled-schedule]`

async function jobFromFile(path: string): Promise<unknown> {
  const text = path === '-' ? await readStdin() : await readFile(path, 'utf8').catch(error => Promise.reject(Object.assign(error as Error, { path }))) // EISDIR names no path
  try {
    return parseJson(text)
  } catch (error) {
    throw new UsageError(`${path === '-' ? 'the job on stdin' : path} is not valid JSON (${(error as Error).message}); a job file is described in the README`)
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** A job from flags: the common case (one schedule); anything richer is a job file. */
function jobFromFlags(context: CommandContext): JobInput {
  const name = stringOption(context, 'name')
  const mode = stringOption(context, 'mode')
  if (name === undefined || mode === undefined) throw new UsageError('give --file job.json, or at least --name and --mode')
  if (mode !== 'full' && mode !== 'delta') throw new UsageError("--mode is 'full' or 'delta'")
  const uuids = listOption(context, 'vm')
  const smart = { pools: listOption(context, 'pool'), tags: listOption(context, 'tag'), notTags: listOption(context, 'not-tag') }
  if (uuids.length > 0 && (smart.pools.length > 0 || smart.tags.length > 0 || smart.notTags.length > 0)) throw new UsageError('--vm lists VMs by hand; --pool/--tag/--not-tag make a smart selection: use one or the other')
  const retention = integerOption(context, 'retention')
  const concurrency = integerOption(context, 'concurrency')
  return {
    name,
    mode,
    vms: uuids.length > 0 ? { uuids } : { smart },
    remotes: listOption(context, 'remote'),
    srs: listOption(context, 'sr'),
    settings: concurrency === undefined ? {} : { concurrency },
    schedules: [
      {
        name: 'default',
        cron: stringOption(context, 'cron') ?? '0 3 * * *',
        timezone: stringOption(context, 'timezone') ?? Intl.DateTimeFormat().resolvedOptions().timeZone,
        enabled: context.values['disabled-schedule'] !== true,
        ...(retention !== undefined && { retention: { backups: retention, replicas: retention } }),
      },
    ],
  }
}

function jobRows(jobs: JobInfo[]): string {
  return table(
    ['ID', 'NAME', 'MODE', 'REMOTES', 'SCHEDULES', 'ENABLED', 'LAST RUN', 'NEXT RUN'],
    jobs.map(({ job, enabled, running, lastRun, nextRun }) => [
      job.id ?? '-',
      job.name,
      job.mode,
      job.remotes.join(',') || '-',
      job.schedules.map(s => `${s.name}: ${s.cron} ${s.timezone}${s.enabled ? '' : ' (off)'}`).join('; '),
      enabled ? 'yes' : 'no',
      running !== undefined ? `running ${running}` : lastRun === undefined ? '-' : `${lastRun.status} ${formatDate(lastRun.start)}`,
      formatDate(nextRun),
    ]),
  )
}

export const JOB_COMMANDS: Record<string, Record<string, Subcommand>> = {
  job: {
    create: {
      usage: `lifeboat job create (--file job.json | ${CREATE_FLAGS}) [--json] [--socket PATH]`,
      options: {
        file: { type: 'string' }, name: { type: 'string' }, mode: { type: 'string' }, vm: { type: 'string', multiple: true },
        pool: { type: 'string', multiple: true }, tag: { type: 'string', multiple: true }, 'not-tag': { type: 'string', multiple: true },
        remote: { type: 'string', multiple: true }, sr: { type: 'string', multiple: true }, cron: { type: 'string' }, timezone: { type: 'string' },
        retention: { type: 'string' }, concurrency: { type: 'string' }, 'disabled-schedule': { type: 'boolean' },
      },
      async body(context) {
        const file = stringOption(context, 'file')
        const job = file !== undefined ? await jobFromFile(file) : jobFromFlags(context)
        const info = await (await context.client()).call('job.create', { job: job as JobInput })
        context.print(info, () => `job "${info.job.name}" created with id ${info.job.id}\n`)
      },
    },
    list: {
      usage: 'lifeboat job list [--json] [--socket PATH]',
      async body(context) {
        const jobs = await (await context.client()).call('job.list')
        context.print(jobs, () => jobRows(jobs) || 'no jobs; create one with lifeboat job create\n')
      },
    },
    show: {
      usage: 'lifeboat job show J [--json] [--socket PATH]   (J: id or name; --json prints the job file)',
      arity: [1, 1],
      async body(context) {
        const info = await (await context.client()).call('job.get', { id: context.positionals[0]! })
        // --json is the job file's shape (DESIGN.md), so it can be edited and created again.
        context.print(info.job, () => jobRows([info]) + '\n' + JSON.stringify(info.job, null, 2) + '\n')
      },
    },
    run: {
      usage: 'lifeboat job run J [--schedule S] [--wait] [--json] [--socket PATH]   (exit 1 with --wait when the run does not succeed)',
      options: { schedule: { type: 'string' }, wait: { type: 'boolean' } },
      arity: [1, 1],
      async body(context) {
        const schedule = stringOption(context, 'schedule')
        const { runId } = await (await context.client()).call('job.run', { id: context.positionals[0]!, ...(schedule !== undefined && { schedule }) })
        if (context.values.wait === true) return waitAndReport(context, runId)
        context.print({ runId }, () => `run ${runId} started; follow it with: lifeboat logs ${runId} --follow\n`)
      },
    },
    enable: {
      usage: 'lifeboat job enable J [--json] [--socket PATH]   (its schedules fire again)',
      arity: [1, 1],
      async body(context) {
        const info = await (await context.client()).call('job.setEnabled', { id: context.positionals[0]!, enabled: true })
        context.print(info, () => `job "${info.job.name}" enabled; next run ${formatDate(info.nextRun)}\n`)
      },
    },
    disable: {
      usage: 'lifeboat job disable J [--json] [--socket PATH]   (no scheduled runs; job run still works)',
      arity: [1, 1],
      async body(context) {
        const info = await (await context.client()).call('job.setEnabled', { id: context.positionals[0]!, enabled: false })
        context.print(info, () => `job "${info.job.name}" disabled\n`)
      },
    },
    delete: {
      usage: 'lifeboat job delete J [--json] [--socket PATH]',
      arity: [1, 1],
      async body(context) {
        const result = await (await context.client()).call('job.delete', { id: context.positionals[0]! })
        context.print(result, () => `job ${context.positionals[0]} deleted\n`)
      },
    },
  },
}
