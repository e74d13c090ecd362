// `lifeboat remote add|list|test|remove`: where backups go.
import { formatBytes, table } from './output.ts'
import type { Subcommand } from './index.ts'

export const REMOTE_COMMANDS: Record<string, Record<string, Subcommand>> = {
  remote: {
    add: {
      usage: 'lifeboat remote add NAME URL [--json] [--socket PATH]   (URL: file:///path, nfs://host:/export, smb://…, s3://…, azure://…)',
      arity: [2, 2],
      async body(context) {
        const [name, url] = context.positionals as [string, string]
        const remote = await (await context.client()).call('remote.add', { name, url })
        context.print(remote, () => `remote "${remote.name}" added (${remote.url}): ${remote.status}${remote.error === undefined ? '' : ` (${remote.error.code}: ${remote.error.message})`}\n`)
      },
    },
    list: {
      usage: 'lifeboat remote list [--json] [--socket PATH]',
      async body(context) {
        const remotes = await (await context.client()).call('remote.list')
        context.print(remotes, () => table(['NAME', 'TYPE', 'URL', 'STATUS', 'SIZE', 'FREE'], remotes.map(r => [r.name, r.type, r.url, r.error === undefined ? r.status : `${r.status}: ${r.error.code}`, formatBytes(r.space?.size), formatBytes(r.space?.free)])) || 'no remotes; add one with lifeboat remote add\n')
      },
    },
    test: {
      usage: 'lifeboat remote test NAME [--json] [--socket PATH]   (writes, reads back and deletes a 64 MiB probe file)',
      arity: [1, 1],
      async body(context) {
        const result = await (await context.client()).call('remote.test', { name: context.positionals[0]! })
        context.print(result, () => `remote "${context.positionals[0]}" is fine: write ${result.writeMiBps} MiB/s, read ${result.readMiBps} MiB/s (${formatBytes(result.bytes)} probe)\n`)
      },
    },
    remove: {
      usage: 'lifeboat remote remove NAME [--json] [--socket PATH]   (the backups on it are left alone)',
      arity: [1, 1],
      async body(context) {
        const result = await (await context.client()).call('remote.remove', { name: context.positionals[0]! })
        context.print(result, () => `remote "${context.positionals[0]}" removed (its backups are still there)\n`)
      },
    },
  },
}
