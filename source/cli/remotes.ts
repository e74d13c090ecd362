// `lifeboat remote add|list|info|test|remove`: where backups go.
import { formatRemoteUrl, parseRemoteUrl, redactRemoteUrl, remoteInfoLines, typedRemoteUrl, type RemoteUrl } from '../protocol/remotes.ts'
import { formatBytes, table } from './output.ts'
import { UsageError } from './command.ts'
import { secretOption } from './pools.ts'
import { askHidden } from './prompt.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'
import { integerOption, type CommandContext, type Subcommand } from './index.ts'
import { VERIFY_COMMAND } from './verify.ts'

const SECRET_NAMES: Partial<Record<RemoteUrl['type'], string>> = { smb: 'password', s3: 'secret access key', azure: 'account key', azurite: 'account key' }

/**
 * The URL to add: given whole (argument, variable or file), with its secret and encryption key put in from
 * --secret-* / --encryption-key-* or, on a terminal, asked for without echo when the URL names a user and no secret.
 */
async function remoteUrl(context: CommandContext): Promise<string> {
  const given = context.positionals[1]
  const hidden = await secretOption(context, 'url', { required: given === undefined })
  if (given !== undefined && hidden !== undefined) throw new UsageError('give the URL once: on the command line, or with --url-env / --url-file')
  const url = typedRemoteUrl((given ?? hidden)!)
  const secret = await secretOption(context, 'secret', { required: false, stdin: true })
  const encryptionKey = await secretOption(context, 'encryption-key', { required: false, stdin: false })
  const remote = parseRemoteUrl(url)
  const secretName = SECRET_NAMES[remote.type]
  const typed = given === undefined ? undefined : 'password' in remote && remote.password !== '' ? secretName : remote.options.encryptionKey !== undefined ? 'encryption key' : undefined
  if (typed !== undefined) process.stderr.write(`lifeboat: warning: the URL's ${typed} was typed on the command line, where the shell history keeps it; next time leave it out of the URL and give it with --secret-stdin or --encryption-key-file (or at the prompt).\n`)
  if (!('password' in remote) || secretName === undefined) {
    if (secret !== undefined) throw new UsageError(`a ${remote.type}:// remote has no secret: drop --secret-*`)
    return encryptionKey === undefined ? url : formatRemoteUrl(withEncryptionKey(remote, encryptionKey))
  }
  let filled = remote
  if (secret !== undefined || (remote.password === '' && remote.username !== '' && process.stdin.isTTY === true)) {
    if (remote.password !== '') throw new UsageError(`the URL already holds the ${secretName}: give it once`)
    if (remote.username === '') throw new UsageError(`put the ${remote.type === 's3' ? 'access key id' : remote.type === 'smb' ? 'user' : 'account name'} in the URL (${exampleUser(remote.type)}) and only the ${secretName} aside`)
    const value = secret ?? (await askHidden(`${secretName[0]!.toUpperCase()}${secretName.slice(1)} for ${terminalSafeLine(redactRemoteUrl(url))} (not shown): `))
    if (value === '') throw new UsageError(`the ${secretName} is empty`)
    filled = { ...remote, password: value }
  }
  if (encryptionKey !== undefined) filled = withEncryptionKey(filled, encryptionKey)
  return filled === remote ? url : formatRemoteUrl(filled)
}

function withEncryptionKey<T extends RemoteUrl>(remote: T, key: string): T {
  if (remote.options.encryptionKey !== undefined) throw new UsageError('the URL already holds an encryptionKey: give it once')
  return { ...remote, options: { ...remote.options, encryptionKey: key } }
}

function exampleUser(type: RemoteUrl['type']): string {
  return type === 's3' ? 's3://AKIAEXAMPLE@host/bucket' : type === 'smb' ? 'smb://user@DOMAIN\\\\host\\share' : `${type}://account@host/container`
}

export const REMOTE_COMMANDS: Record<string, Record<string, Subcommand>> = {
  remote: {
    add: {
      positionals: ['NAME', '[URL]'],
      summary: 'Adds a backup remote (refused when it cannot be reached).',
      notes:
        'URL: file:///path, nfs://host:/export, smb://user@DOMAIN\\\\host\\share, s3://KEYID@host/bucket/dir, azure://account@host/container (every form: the README). ' +
        'Leave the secret (S3 secret key, Azure account key, SMB password) out of the URL: it is asked for, not shown, when a terminal is there, or read with --secret-stdin / --secret-env / --secret-file. ' +
        'It is never shown again: list, info and --json show the URL with *** in its place. ' +
        'With --proxy, the URL is opened on that proxy (a folder or a share it reaches, file:///srv/backups on the proxy host): the jobs that back up to it run there, and the appliance lists, restores and verifies through the proxy.',
      options: {
        proxy: { value: 'P', help: 'the remote lives on this proxy (proxy list): opened there, reached through it' },
        'url-env': { value: 'VAR', help: 'read the whole URL from this environment variable' },
        'url-file': { value: 'F', help: 'read the whole URL from this file (one trailing newline ignored)' },
        'secret-stdin': { help: "read the URL's secret from standard input (echo \"$KEY\" | lifeboat remote add …)" },
        'secret-env': { value: 'VAR', help: "read the URL's secret from this environment variable" },
        'secret-file': { value: 'F', help: "read the URL's secret from this file (one trailing newline ignored)" },
        'encryption-key-env': { value: 'VAR', help: 'encrypt the backups with the key in this environment variable (encryptionKey)' },
        'encryption-key-file': { value: 'F', help: 'encrypt the backups with the key in this file (encryptionKey)' },
      },
      async body(context) {
        const name = context.positionals[0]!
        const url = await remoteUrl(context)
        const proxy = context.values.proxy as string | undefined
        const remote = await (await context.client()).call('remote.add', { name, url, ...(proxy !== undefined && { proxy }) })
        context.print(remote, () => `remote "${remote.name}" added (${remote.url}${remote.proxy === undefined ? '' : ` on the proxy "${remote.proxy}"`}): ${remote.status}${remote.error === undefined ? '' : ` (${remote.error.code}: ${remote.error.message})`}\n`)
      },
    },
    list: {
      summary: 'Lists the remotes with their status and free space.',
      async body(context) {
        const remotes = await (await context.client()).call('remote.list')
        const onProxies = remotes.some(r => r.proxy !== undefined)
        context.print(remotes, () => table(['NAME', 'TYPE', ...(onProxies ? ['PROXY'] : []), 'URL', 'STATUS', 'SIZE', 'FREE'], remotes.map(r => [r.name, r.type, ...(onProxies ? [r.proxy ?? '-'] : []), r.url, r.error === undefined ? r.status : `${r.status}: ${r.error.code}`, formatBytes(r.space?.size), r.space === undefined && r.status === 'ok' ? 'unknown' : formatBytes(r.space?.free)])) || 'no remotes; add one with npx lifeboat remote add\n')
      },
    },
    info: {
      positionals: ['NAME'],
      summary: 'Shows a remote: type, URL (secrets masked), status, free space, encryption and what it can do.',
      async body(context) {
        const info = await (await context.client()).call('remote.info', { name: context.positionals[0]! })
        const lines = remoteInfoLines(info)
        const width = Math.max(...lines.map(([label]) => label.length))
        context.print(info, () => `remote "${info.name}"\n${lines.map(([label, text]) => `  ${label.padEnd(width)}  ${text}`).join('\n')}\n`)
      },
    },
    test: {
      positionals: ['NAME'],
      summary: 'Measures a remote: write and read MiB/s of a probe file, and the latency of small files.',
      notes: 'Writes the probe, reads it back whole and a range of it (compared with what was written), times small writes, reads, stats and deletes, and deletes all it wrote. A failure names the step.',
      options: { mib: { value: 'N', help: 'the probe file in MiB (default 64)' } },
      async body(context) {
        const mib = integerOption(context, 'mib')
        if (mib !== undefined && (mib < 1 || mib > 1024)) throw new UsageError('--mib must be between 1 and 1024')
        const name = context.positionals[0]!
        const result = await (await context.client()).call('remote.test', { name, ...(mib !== undefined && { bytes: mib * 1024 * 1024 }) })
        const { latencyMs: l } = result
        context.print(
          result,
          () =>
            `remote "${name}" passed: a ${formatBytes(result.bytes)} probe written, read back whole and a ${formatBytes(result.range.length)} range, both compared, and deleted\n` +
            `  write    ${result.writeMiBps.toFixed(1)} MiB/s\n` +
            `  read     ${result.readMiBps.toFixed(1)} MiB/s\n` +
            `  latency  write ${ms(l.write)}, read ${ms(l.read)}, stat ${ms(l.stat)}, delete ${ms(l.delete)} (median of ${result.samples} files of 4 KiB)\n`,
        )
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
    verify: VERIFY_COMMAND,
  },
}

function ms(value: number): string {
  return `${value < 10 ? value.toFixed(2) : value.toFixed(0)} ms`
}
