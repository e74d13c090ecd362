// `lifeboat backup list` (the restore points on a remote), `lifeboat backup check` (a health check of one of them)
// and `lifeboat restore` (one of them, to an SR).
import { formatBytes, formatDate, table } from './output.ts'
import { stringOption, type Subcommand } from './index.ts'
import { waitAndReport } from './runs.ts'
import { verificationLabel } from '../protocol/verification.ts'

export const BACKUP_COMMANDS: Record<string, Record<string, Subcommand>> = {
  backup: {
    list: {
      summary: 'Lists the restore points on a remote, newest first.',
      notes: '--json gives them as the daemon lists them: by VM, oldest first within each VM.',
      options: { remote: { value: 'R', required: true, help: 'the remote (by name)' }, vm: { value: 'UUID', help: "only this VM's" } },
      async body(context) {
        const vm = stringOption(context, 'vm')
        const client = await context.client()
        const points = await client.call('backup.list', { remote: stringOption(context, 'remote')!, ...(vm !== undefined && { vm }) })
        if (context.json) return context.print(points, () => '')
        // Jobs by name; a deleted job's backups keep its id.
        const jobNames = new Map((await client.call('job.list')).map(({ job }) => [job.id, job.name]))
        const newestFirst = [...points].sort((a, b) => b.timestamp - a.timestamp)
        context.print(points, () => table(['DATE', 'VM', 'JOB', 'MODE', 'SIZE', 'VERIFIED', 'ID'], newestFirst.map(p => [formatDate(p.timestamp), p.vmName, jobNames.get(p.jobId) ?? p.jobId, p.mode, formatBytes(p.size), verificationLabel(p.verification, at => formatDate(at)), p.id])) || 'no backups on this remote\n')
      },
    },
    check: {
      summary: 'Health-checks a restore point: restored on an SR, started, its guest agent waited for, destroyed.',
      notes: "A VM tagged xo-backup-health-check-xenstore also waits for its in-guest script (XO's protocol). The check runs as a run of its own (run list, logs).",
      positionals: ['ID'],
      options: {
        remote: { value: 'R', required: true, help: 'the remote holding the backup (by name)' },
        sr: { value: 'SR', required: true, help: 'the SR the VM is restored on for the check (uuid or unique name)' },
        timeout: { value: 'D', help: 'bound on the whole check, e.g. 5m (default 10m)' },
        wait: { help: 'follow the check to its end; exit 1 unless it passed' },
      },
      async body(context) {
        const timeout = stringOption(context, 'timeout')
        const { runId } = await (await context.client()).call('backup.check', {
          remote: stringOption(context, 'remote')!, backupId: context.positionals[0]!, sr: stringOption(context, 'sr')!, ...(timeout !== undefined && { timeout }),
        })
        if (context.values.wait === true) return waitAndReport(context, runId)
        context.print({ runId }, () => `health check ${runId} started; follow it with: npx lifeboat logs ${runId} --follow\n`)
      },
    },
  },
  restore: {
    '': {
      summary: 'Restores a restore point as a new VM.',
      notes: 'On an SR of any connected pool; the VM gets a name and a tag that say where it came from.',
      options: {
        remote: { value: 'R', required: true, help: 'the remote holding the backup (by name)' },
        backup: { value: 'ID', required: true, help: 'the restore point (its ID from backup list)' },
        sr: { value: 'SR', required: true, help: 'the SR to restore to (uuid or unique name, from sr list)' },
        name: { value: 'N', help: "the new VM's name (default: the original's, with the backup's date)" },
        start: { help: 'start the VM once restored' },
        wait: { help: 'follow the restore to its end; exit 1 unless it succeeded' },
      },
      async body(context) {
        const name = stringOption(context, 'name')
        const { runId } = await (await context.client()).call('restore.start', {
          remote: stringOption(context, 'remote')!,
          backupId: stringOption(context, 'backup')!,
          sr: stringOption(context, 'sr')!,
          ...(name !== undefined && { name }),
          ...(context.values.start === true && { start: true }),
        })
        if (context.values.wait === true) return waitAndReport(context, runId)
        context.print({ runId }, () => `restore ${runId} started; follow it with: npx lifeboat logs ${runId} --follow\n`)
      },
    },
  },
}
