// `lifeboat backup list` (the restore points on a remote) and `lifeboat restore` (one of them, to an SR).
import { formatBytes, formatDate, table } from './output.ts'
import { stringOption, type Subcommand } from './index.ts'
import { waitAndReport } from './runs.ts'

export const BACKUP_COMMANDS: Record<string, Record<string, Subcommand>> = {
  backup: {
    list: {
      summary: 'Lists the restore points on a remote, newest first.',
      options: { remote: { value: 'R', required: true, help: 'the remote (by name)' }, vm: { value: 'UUID', help: "only this VM's" } },
      async body(context) {
        const vm = stringOption(context, 'vm')
        const client = await context.client()
        const points = await client.call('backup.list', { remote: stringOption(context, 'remote')!, ...(vm !== undefined && { vm }) })
        if (context.json) return context.print(points, () => '')
        // Jobs by name; a deleted job's backups keep its id.
        const jobNames = new Map((await client.call('job.list')).map(({ job }) => [job.id, job.name]))
        context.print(points, () => table(['DATE', 'VM', 'JOB', 'MODE', 'SIZE', 'ID'], points.map(p => [formatDate(p.timestamp), p.vmName, jobNames.get(p.jobId) ?? p.jobId, p.mode, formatBytes(p.size), p.id])) || 'no backups on this remote\n')
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
