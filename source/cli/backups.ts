// `lifeboat backup list` (the restore points on a remote) and `lifeboat restore` (one of them, to an SR).
import { UsageError } from './command.ts'
import { formatBytes, formatDate, table } from './output.ts'
import { stringOption, type CommandContext, type Subcommand } from './index.ts'
import { waitAndReport } from './runs.ts'

function required(context: CommandContext, name: string): string {
  const value = stringOption(context, name)
  if (value === undefined) throw new UsageError(`--${name} is required`)
  return value
}

export const BACKUP_COMMANDS: Record<string, Record<string, Subcommand>> = {
  backup: {
    list: {
      usage: 'lifeboat backup list --remote R [--vm UUID] [--json] [--socket PATH]',
      options: { remote: { type: 'string' }, vm: { type: 'string' } },
      async body(context) {
        const vm = stringOption(context, 'vm')
        const points = await (await context.client()).call('backup.list', { remote: required(context, 'remote'), ...(vm !== undefined && { vm }) })
        context.print(points, () => table(['VM', 'NAME', 'DATE', 'MODE', 'SIZE', 'ID'], points.map(p => [p.vmUuid, p.vmName, formatDate(p.timestamp), p.mode, formatBytes(p.size), p.id])) || 'no backups on this remote\n')
      },
    },
  },
  restore: {
    '': {
      usage: 'lifeboat restore --remote R --backup ID --sr SR [--name N] [--start] [--wait] [--json] [--socket PATH]   (ID: from backup list)',
      options: { remote: { type: 'string' }, backup: { type: 'string' }, sr: { type: 'string' }, name: { type: 'string' }, start: { type: 'boolean' }, wait: { type: 'boolean' } },
      async body(context) {
        const name = stringOption(context, 'name')
        const { runId } = await (await context.client()).call('restore.start', {
          remote: required(context, 'remote'),
          backupId: required(context, 'backup'),
          sr: required(context, 'sr'),
          ...(name !== undefined && { name }),
          ...(context.values.start === true && { start: true }),
        })
        if (context.values.wait === true) return waitAndReport(context, runId)
        context.print({ runId }, () => `restore ${runId} started; follow it with: lifeboat logs ${runId} --follow\n`)
      },
    },
  },
}
