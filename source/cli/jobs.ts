// `lifeboat job create|list|show|run|delete`: backup and mirror jobs, from a JSON file (DESIGN.md's shape) or flags.
import { readFile } from 'node:fs/promises'
import { parseJson } from '../util/json.ts'
import { jobModes, type JobInput } from '../protocol/job.ts'
import { planLines } from '../protocol/plan.ts'
import { runStatusText, type JobInfo } from '../protocol/methods.ts'
import { EXIT_FAILURE, EXIT_OK, UsageError } from './command.ts'
import { formatDate, table } from './output.ts'
import { integerOption, listOption, stringOption, type CommandContext, type Subcommand } from './index.ts'
import { waitAndReport } from './runs.ts'

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
  const healthCheckSr = stringOption(context, 'health-check-sr')
  const healthCheckTags = listOption(context, 'health-check-tag')
  const healthCheckTimeout = stringOption(context, 'health-check-timeout')
  if (healthCheckSr === undefined && (healthCheckTags.length > 0 || healthCheckTimeout !== undefined)) throw new UsageError('--health-check-tag and --health-check-timeout go with --health-check-sr (where the checked VM is restored)')
  const sourceRemote = stringOption(context, 'source-remote')
  const filtered = uuids.length > 0 || smart.pools.length > 0 || smart.tags.length > 0 || smart.notTags.length > 0
  return {
    name,
    ...(sourceRemote !== undefined && { type: 'mirror', sourceRemote }),
    mode,
    // A mirror without --vm or --tag copies every VM of its source.
    ...((sourceRemote === undefined || filtered) && { vms: uuids.length > 0 ? { uuids } : { smart } }),
    remotes: listOption(context, 'remote'),
    srs: listOption(context, 'sr'),
    ...(stringOption(context, 'proxy') !== undefined && { proxy: stringOption(context, 'proxy') }),
    settings: {
      ...(concurrency !== undefined && { concurrency }),
      ...(healthCheckSr !== undefined && { healthCheckSr }),
      ...(healthCheckTags.length > 0 && { healthCheckVmsWithTags: healthCheckTags }),
      ...(healthCheckTimeout !== undefined && { healthCheckTimeout }),
    },
    schedules: [
      {
        name: 'default',
        cron: stringOption(context, 'cron') ?? '0 3 * * *',
        timezone: stringOption(context, 'timezone') ?? Intl.DateTimeFormat().resolvedOptions().timeZone,
        enabled: context.values['disabled-schedule'] !== true,
        ...(retention !== undefined && { retention: sourceRemote === undefined ? { backups: retention, replicas: retention } : { backups: retention } }),
      },
    ],
  }
}

/** The timezone a job's next run is told in: its enabled schedules' one, when they share it (else the local one). */
function scheduleZone(job: JobInfo['job']): string | undefined {
  const zones = new Set(job.schedules.filter(schedule => schedule.enabled).map(schedule => schedule.timezone))
  return zones.size === 1 ? [...zones][0] : undefined
}

/** The jobs as a table; a PROXY column (where each runs) when one of them runs on a proxy. */
function jobRows(jobs: JobInfo[]): string {
  const proxies = jobs.some(({ job }) => job.proxy !== undefined)
  return table(
    ['ID', 'NAME', 'MODE', ...(proxies ? ['PROXY'] : []), 'REMOTES', 'SRS', 'SCHEDULES', 'ENABLED', 'LAST RUN', 'NEXT RUN'],
    jobs.map(({ job, enabled, running, lastRun, nextRun }) => [
      job.id ?? '-',
      job.name,
      jobModes(job).join(' + '),
      ...(proxies ? [job.proxy ?? '-'] : []),
      `${job.sourceRemote === undefined ? '' : `${job.sourceRemote} → `}${job.remotes.join(',') || '-'}`,
      String(job.srs.length),
      job.schedules.map(s => `${s.name}: ${s.cron} ${s.timezone}${s.enabled ? '' : ' (off)'}`).join('; '),
      enabled ? 'yes' : 'no',
      running !== undefined ? `running ${running}` : lastRun === undefined ? '-' : `${runStatusText(lastRun)} ${formatDate(lastRun.start)}`,
      formatDate(nextRun, scheduleZone(job)),
    ]),
  )
}

export const JOB_COMMANDS: Record<string, Record<string, Subcommand>> = {
  job: {
    create: {
      summary: 'Creates a backup or mirror job from a job file or from flags.',
      notes: "A job file's shape is in the README (job show J --json prints one); the flags cover the common case, one schedule.",
      options: {
        file: { value: 'job.json', help: 'the job file (- for stdin); the flags below are for jobs without one' },
        name: { value: 'N', help: "the job's name" },
        mode: { value: 'full|delta', help: 'full: an XVA per backup; delta: VHD chains, only changed blocks after the first' },
        vm: { value: 'UUID', multiple: true, help: 'a VM to back up (the list is fixed)' },
        pool: { value: 'P', multiple: true, help: "smart selection: this pool's VMs (uuid or name), evaluated at each run" },
        tag: { value: 'T', multiple: true, help: 'smart selection: VMs with this tag' },
        'not-tag': { value: 'T', multiple: true, help: 'smart selection: not VMs with this tag' },
        remote: { value: 'R', multiple: true, help: 'a remote to write to (by name)' },
        'source-remote': { value: 'R', help: 'a mirror job: copies the backups of this remote to the --remote ones (--vm and --tag filter its VMs)' },
        proxy: { value: 'NAME', help: "run the job on this proxy ('proxy list'): the data goes from the pool to the remotes through it, not the appliance" },
        sr: { value: 'SR', multiple: true, help: 'an SR to replicate to (uuid or unique name; full mode: disaster recovery, delta: continuous replication)' },
        cron: { value: '"0 3 * * *"', help: 'when the schedule fires (default 0 3 * * *: 03:00 every day)' },
        timezone: { value: 'TZ', help: "the schedule's IANA timezone, e.g. Europe/Paris (default: this machine's)" },
        retention: { value: 'N', help: 'backups (and replicas) kept by the schedule' },
        concurrency: { value: 'N', help: 'VMs backed up at once (0: all)' },
        'health-check-sr': { value: 'SR', help: 'health-check each backup after it is written: restored (a replica cloned) on this SR, started, destroyed' },
        'health-check-tag': { value: 'T', multiple: true, help: 'only health-check the VMs with this tag (default: every VM but those tagged xo:no-health-check)' },
        'health-check-timeout': { value: 'D', help: 'bound on each health check, every step included (default 10m)' },
        'disabled-schedule': { help: 'create the schedule switched off (job run still works)' },
      },
      async body(context) {
        const file = stringOption(context, 'file')
        const job = file !== undefined ? await jobFromFile(file) : jobFromFlags(context)
        const info = await (await context.client()).call('job.create', { job: job as JobInput })
        context.print(info, () => `job "${info.job.name}" created with id ${info.job.id}\n`)
      },
    },
    list: {
      summary: 'Lists the jobs with their schedules, last run and next run.',
      async body(context) {
        const jobs = await (await context.client()).call('job.list')
        context.print(jobs, () => jobRows(jobs) || 'no jobs; create one with npx lifeboat job create\n')
      },
    },
    show: {
      positionals: ['J'],
      summary: 'Shows a job (--json: its job file).',
      notes: 'J: its id or name. The --json output is a job file, ready to edit and create again.',
      async body(context) {
        const info = await (await context.client()).call('job.get', { id: context.positionals[0]! })
        // --json is the job file's shape (DESIGN.md), so it can be edited and created again.
        context.print(info.job, () => jobRows([info]) + '\n' + JSON.stringify(info.job, null, 2) + '\n')
      },
    },
    run: {
      positionals: ['J'],
      summary: 'Runs a job now.',
      notes: 'J: its id or name.',
      options: {
        schedule: { value: 'S', help: 'the schedule whose settings and retention apply (default: the first)' },
        wait: { help: 'follow the run to its end, print its tree; exit 1 unless it succeeded' },
      },
      async body(context) {
        const schedule = stringOption(context, 'schedule')
        const { runId } = await (await context.client()).call('job.run', { id: context.positionals[0]!, ...(schedule !== undefined && { schedule }) })
        if (context.values.wait === true) return waitAndReport(context, runId)
        context.print({ runId }, () => `run ${runId} started; follow it with: npx lifeboat logs ${runId} --follow\n`)
      },
    },
    plan: {
      positionals: ['J'],
      summary: 'Shows what the next run would do and what would stop it; changes nothing.',
      notes: "J: its id or name. Per VM and disk: full or delta and why; per target: free space, bytes expected, retention; the run's cost and window; the problems it would hit, each with its remedy. Exits 1 when a problem would stop the run. --json: the shape in source/protocol/plan.ts.",
      options: {
        schedule: { value: 'S', help: 'the schedule whose next run is planned (default: the first)' },
      },
      async body(context) {
        const schedule = stringOption(context, 'schedule')
        const plan = await (await context.client()).call('job.plan', { id: context.positionals[0]!, ...(schedule !== undefined && { schedule }) })
        context.print(plan, () => planLines(plan, ms => formatDate(ms, plan.timezone)).map(line => line.text).join('\n') + '\n')
        return plan.problems.some(problem => problem.severity === 'error') ? EXIT_FAILURE : EXIT_OK
      },
    },
    enable: {
      positionals: ['J'],
      summary: "Switches a job on: its schedules fire again.",
      async body(context) {
        const info = await (await context.client()).call('job.setEnabled', { id: context.positionals[0]!, enabled: true })
        context.print(info, () => `job "${info.job.name}" enabled; next run ${formatDate(info.nextRun, scheduleZone(info.job))}\n`)
      },
    },
    disable: {
      positionals: ['J'],
      summary: 'Switches a job off: no scheduled runs (job run still works).',
      async body(context) {
        const info = await (await context.client()).call('job.setEnabled', { id: context.positionals[0]!, enabled: false })
        context.print(info, () => `job "${info.job.name}" disabled\n`)
      },
    },
    delete: {
      positionals: ['J'],
      summary: 'Deletes a job; its backups stay on the remotes.',
      async body(context) {
        const result = await (await context.client()).call('job.delete', { id: context.positionals[0]! })
        context.print(result, () => `job ${context.positionals[0]} deleted\n`)
      },
    },
  },
}
