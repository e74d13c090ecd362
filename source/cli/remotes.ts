// `lifeboat remote add|list|test|remove`: where backups go.
import { formatBytes, table } from './output.ts'
import { UsageError } from './command.ts'
import { secretOption } from './pools.ts'
import type { Subcommand } from './index.ts'

export const REMOTE_COMMANDS: Record<string, Record<string, Subcommand>> = {
  remote: {
    add: {
      positionals: ['NAME', '[URL]'],
      summary: 'Adds a backup remote (refused when it cannot be reached).',
      notes: 'URL: file:///path, nfs://host:/export, smb://…, s3://…, azure://… (their forms: the README). A URL with keys is best given with --url-env or --url-file, out of the shell history.',
      options: {
        'url-env': { value: 'VAR', help: 'read the URL from this environment variable' },
        'url-file': { value: 'F', help: 'read the URL from this file (one trailing newline ignored)' },
      },
      async body(context) {
        const [name, given] = context.positionals as [string, string | undefined]
        const hidden = await secretOption(context, 'url', given === undefined)
        if (given !== undefined && hidden !== undefined) throw new UsageError('give the URL once: on the command line, or with --url-env / --url-file')
        const url = (given ?? hidden)!
        const remote = await (await context.client()).call('remote.add', { name, url })
        context.print(remote, () => `remote "${remote.name}" added (${remote.url}): ${remote.status}${remote.error === undefined ? '' : ` (${remote.error.code}: ${remote.error.message})`}\n`)
      },
    },
    list: {
      summary: 'Lists the remotes with their status and free space.',
      async body(context) {
        const remotes = await (await context.client()).call('remote.list')
        context.print(remotes, () => table(['NAME', 'TYPE', 'URL', 'STATUS', 'SIZE', 'FREE'], remotes.map(r => [r.name, r.type, r.url, r.error === undefined ? r.status : `${r.status}: ${r.error.code}`, formatBytes(r.space?.size), formatBytes(r.space?.free)])) || 'no remotes; add one with npx lifeboat remote add\n')
      },
    },
    test: {
      positionals: ['NAME'],
      summary: 'Measures a remote with a 64 MiB probe file.',
      notes: 'Writes, reads back and deletes the probe, and prints the speeds.',
      async body(context) {
        const result = await (await context.client()).call('remote.test', { name: context.positionals[0]! })
        context.print(result, () => `remote "${context.positionals[0]}" is fine: write ${result.writeMiBps} MiB/s, read ${result.readMiBps} MiB/s (${formatBytes(result.bytes)} probe)\n`)
      },
    },
    remove: {
      positionals: ['NAME'],
      summary: 'Forgets a remote; the backups on it are left alone.',
      async body(context) {
        const result = await (await context.client()).call('remote.remove', { name: context.positionals[0]! })
        context.print(result, () => `remote "${context.positionals[0]}" removed (its backups are still there)\n`)
      },
    },
  },
}
