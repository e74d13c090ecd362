// `lifeboat file-restore …`: a delta restore point's disks and volumes, a folder page by page, a name search,
// and files or folders fetched as tar or zip to a path on the appliance or to stdout (through a pipe the
// daemon writes into). Each command opens its own session and closes it.
import { spawnSync } from 'node:child_process'
import { constants, createReadStream } from 'node:fs'
import { mkdtemp, open, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { extname, join, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { DaemonClient } from '../client/index.ts'
import type { FileRestoreEntry, FileRestoreVolume } from '../protocol/methods.ts'
import { modeText } from '../protocol/file-restore.ts'
import { LifeboatError } from '../util/errors.ts'
import { EXIT_FAILURE, EXIT_OK, UsageError } from './command.ts'
import { formatBytes, formatDate, table } from './output.ts'
import { followRun, waitAndReport } from './runs.ts'
import { integerOption, stringOption, type CommandContext, type Subcommand } from './index.ts'
import type { OptionSpec } from '../util/args.ts'

const POINT: Record<string, OptionSpec> = {
  remote: { value: 'R', required: true, help: 'the remote holding the backup (by name)' },
  backup: { value: 'ID', required: true, help: 'the restore point (its ID from backup list; a delta backup)' },
}
const VOLUME: Record<string, OptionSpec> = {
  ...POINT,
  disk: { value: 'D', help: 'the disk (its id from file-restore disks; default: the only one, else 0)' },
  volume: { value: 'V', required: true, help: 'the partition or logical volume (1, 2/vg/lv, 0 for a disk without partitions)' },
}

/** Runs `body` on a session of the restore point, closed however it ends. */
async function withSession<T>(context: CommandContext, body: (client: DaemonClient, session: string, disk: string) => Promise<T>): Promise<T> {
  const client = await context.client()
  const opened = await client.call('fileRestore.open', { remote: stringOption(context, 'remote')!, backupId: stringOption(context, 'backup')! })
  try {
    const disk = stringOption(context, 'disk') ?? (opened.disks.length === 1 ? opened.disks[0]!.id : '0')
    return await body(client, opened.session, disk)
  } finally {
    await client.call('fileRestore.close', { session: opened.session }).catch(() => {})
  }
}

function volumeParams(context: CommandContext, session: string, disk: string) {
  return { session, disk, volume: stringOption(context, 'volume')! }
}

function entryRows(entries: Array<FileRestoreEntry & { path?: string }>): string[][] {
  return entries.map(e => [modeText(e), e.type === 'directory' ? '-' : formatBytes(e.size), formatDate(e.mtime), `${e.path ?? e.name}${e.type === 'directory' ? '/' : ''}${e.target === undefined ? '' : ` -> ${e.target}`}`])
}

export const FILE_RESTORE_COMMANDS: Record<string, Record<string, Subcommand>> = {
  'file-restore': {
    disks: {
      summary: "Lists a restore point's disks and, on each, its partitions and LVM logical volumes.",
      notes: 'What --disk and --volume take in the other file-restore commands; XFS and NTFS need the daemon to run as root.',
      options: POINT,
      async body(context) {
        const client = await context.client()
        const opened = await client.call('fileRestore.open', { remote: stringOption(context, 'remote')!, backupId: stringOption(context, 'backup')! })
        try {
          const disks: Array<(typeof opened.disks)[number] & { volumes: FileRestoreVolume[] }> = []
          for (const disk of opened.disks) disks.push({ ...disk, volumes: await client.call('fileRestore.volumes', { session: opened.session, disk: disk.id }) })
          context.print({ vm: opened.vm, backupDate: opened.backupDate, disks }, () =>
            disks.map(disk => `disk ${disk.id}: ${disk.name} (${formatBytes(disk.size)})\n` + table(['VOLUME', 'SIZE', 'TYPE', 'CONTENT', 'LABEL', 'BROWSABLE'],
              disk.volumes.map(v => [v.id, formatBytes(v.size), v.kind, v.content, v.label ?? '', v.browsable ? (v.warning === undefined ? 'yes' : `yes: ${v.warning}`) : `no: ${v.reason}`]))).join('\n'))
        } finally {
          await client.call('fileRestore.close', { session: opened.session }).catch(() => {})
        }
      },
    },
    ls: {
      summary: 'Lists a folder of a backup, one page at a time (by name).',
      positionals: ['[PATH]'],
      options: {
        ...VOLUME,
        limit: { value: 'N', help: 'entries per page (default 200, at most 5000)' },
        after: { value: 'NAME', help: 'start after this name (the "next" of the previous page)' },
        all: { help: 'every page, one after the other' },
      },
      async body(context) {
        const path = context.positionals[0] ?? '/'
        const limit = integerOption(context, 'limit')
        await withSession(context, async (client, session, disk) => {
          let after = stringOption(context, 'after')
          const pages = []
          do {
            const page = await client.call('fileRestore.list', { ...volumeParams(context, session, disk), path, ...(after !== undefined && { after }), ...(limit !== undefined && { limit }) })
            if (!context.json) process.stdout.write(table(['MODE', 'SIZE', 'MODIFIED', 'NAME'], entryRows(page.entries)))
            pages.push(page)
            after = context.values.all === true ? page.next : undefined
            if (after === undefined && page.next !== undefined && !context.json) process.stderr.write(`${page.entries.length} of ${page.total} entries; the next page: --after '${page.next}' (or --all)\n`)
          } while (after !== undefined)
          if (context.json) context.print(context.values.all === true ? { path, entries: pages.flatMap(p => p.entries), total: pages[0]!.total } : pages[0], () => '')
        })
      },
    },
    find: {
      summary: 'Searches a backup for names containing a text (or matching a glob such as *.conf).',
      positionals: ['NAME'],
      options: { ...VOLUME, path: { value: 'P', help: 'search under this folder (default /)' }, limit: { value: 'N', help: 'at most N matches (default 1000)' } },
      async body(context) {
        const query = context.positionals[0]
        if (query === undefined) throw new UsageError('give the NAME to search for')
        const limit = integerOption(context, 'limit')
        await withSession(context, async (client, session, disk) => {
          const found = await client.call('fileRestore.find', { ...volumeParams(context, session, disk), path: stringOption(context, 'path') ?? '/', query, ...(limit !== undefined && { limit }) })
          context.print(found, () => table(['MODE', 'SIZE', 'MODIFIED', 'PATH'], entryRows(found.matches)) + (found.truncated ? `more matches than ${found.matches.length}; narrow the search or raise --limit\n` : found.matches.length === 0 ? 'nothing matches\n' : ''))
        })
      },
    },
    get: {
      summary: 'Fetches files and folders of a backup as a tar or zip archive, to a file on the appliance or to stdout.',
      positionals: ['PATH...'],
      notes: '--output - writes the archive to stdout (e.g. | tar -x). Nothing is overwritten: the file must not exist yet.',
      options: {
        ...VOLUME,
        output: { value: 'FILE', required: true, help: "where the archive goes: a new file's path, or - for stdout" },
        format: { value: 'tar|zip', help: 'the archive format (default: zip for a .zip file, else tar)' },
      },
      async body(context) {
        const paths = context.positionals
        if (paths.length === 0) throw new UsageError('give at least one PATH to fetch')
        const output = stringOption(context, 'output')!
        const format = stringOption(context, 'format') ?? (extname(output).toLowerCase() === '.zip' ? 'zip' : 'tar')
        if (format !== 'tar' && format !== 'zip') throw new UsageError(`--format must be tar or zip, not '${format}'`)
        return withSession(context, async (client, session, disk) => {
          const params = { ...volumeParams(context, session, disk), paths, format: format as 'tar' | 'zip' }
          if (output !== '-') {
            const { runId } = await client.call('fileRestore.fetch', { ...params, destination: resolve(output) })
            return waitAndReport(context, runId)
          }
          return toStdout(client, params)
        })
      },
    },
  },
}

/** The daemon writes into a named pipe the CLI made; the CLI copies it to stdout, then checks the run's outcome. */
async function toStdout(client: DaemonClient, params: { session: string; disk: string; volume: string; paths: string[]; format: 'tar' | 'zip' }): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'lifeboat-fetch-'))
  try {
    const fifo = join(dir, 'archive')
    const made = spawnSync('mkfifo', ['-m', '600', fifo])
    if (made.status !== 0) throw new LifeboatError('FILE_RESTORE_NO_PIPE', `A pipe for stdout could not be made (mkfifo: ${made.stderr?.toString().trim() || made.error?.message}); fetch to a file with --output FILE instead.`)
    const { runId } = await client.call('fileRestore.fetch', { ...params, destination: fifo })
    const copied = pipeline(createReadStream(fifo), process.stdout, { end: false })
    const final = await followRun(client, runId)
    if (final.status !== 'success') {
      // The daemon may never have opened the pipe: a writer opened and closed here ends the reader's wait.
      await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).then(handle => handle.close(), () => {})
      await copied.catch(() => {})
      const reason = final.result as { message?: unknown } | undefined
      process.stderr.write(`file restore ${runId} ${final.status}${typeof reason?.message === 'string' ? `: ${reason.message}` : ''}\n`)
      return EXIT_FAILURE
    }
    await copied
    return EXIT_OK
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
