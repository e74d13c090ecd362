// The CLI's daemon subcommands (pool, vm, sr, remote, proxy, job, run, logs, backup, restore, cr-seed, file-restore): parse the
// arguments, call the daemon over its socket, print a table or a tree, or one JSON document with --json.
import { DaemonClient, defaultSocketPath } from '../client/index.ts'
import type { CommandSpec, OptionSpec, OptionValues } from '../util/args.ts'
import { printJson, runGroupHelp, runSpec, UsageError } from './command.ts'
import { printText } from './output.ts'
import { POOL_COMMANDS } from './pools.ts'
import { REMOTE_COMMANDS } from './remotes.ts'
import { PROXY_COMMANDS } from './proxies.ts'
import { JOB_COMMANDS } from './jobs.ts'
import { RUN_COMMANDS } from './runs.ts'
import { BACKUP_COMMANDS } from './backups.ts'
import { CR_SEED_COMMANDS } from './cr-seed.ts'
import { FILE_RESTORE_COMMANDS } from './file-restore.ts'

export interface CommandContext {
  positionals: string[]
  values: OptionValues
  json: boolean
  client(): Promise<DaemonClient>
  /** Prints the result: JSON as is with --json, else the human form. */
  print(value: unknown, human: () => string): void
}

export interface Subcommand extends Omit<CommandSpec, 'name'> {
  body(context: CommandContext): Promise<number | void>
}

/** command → subcommand ('' when the command has none, like `logs` and `restore`). */
export const COMMANDS: Record<string, Record<string, Subcommand>> = {
  ...POOL_COMMANDS,
  ...REMOTE_COMMANDS,
  ...PROXY_COMMANDS,
  ...JOB_COMMANDS,
  ...RUN_COMMANDS,
  ...BACKUP_COMMANDS,
  ...CR_SEED_COMMANDS,
  ...FILE_RESTORE_COMMANDS,
}

const COMMON: Record<string, OptionSpec> = {
  json: { help: 'print one JSON document on stdout, nothing else' },
  socket: { value: 'PATH', help: "the daemon's socket (default $LIFEBOAT_SOCKET, else lifeboat.sock in the data directory)" },
}

/** The full table of a daemon subcommand: its own options and those every one takes. */
export function commandSpec(command: string, name: string, subcommand: Subcommand): CommandSpec {
  return { ...subcommand, name: name === '' ? command : `${command} ${name}`, options: { ...subcommand.options, ...COMMON } }
}

export async function main(command: string, args: string[]): Promise<void> {
  const group = COMMANDS[command]!
  const direct = group[''] !== undefined
  const name = direct ? '' : (args[0] ?? '')
  const subcommand = group[name]
  if (subcommand === undefined) return runGroupHelp(command, name, Object.entries(group).map(([key, sub]) => commandSpec(command, key, sub)))
  await runSpec(commandSpec(command, name, subcommand), direct ? args : args.slice(1), async (values, positionals) => {
    const json = values.json === true
    let client: DaemonClient | undefined
    try {
      return await subcommand.body({
        positionals,
        values,
        json,
        client: async () => (client ??= await DaemonClient.connect(typeof values.socket === 'string' ? values.socket : defaultSocketPath())),
        print: (value, human) => (json ? printJson(value) : printText(human())),
      })
    } finally {
      client?.close()
    }
  })
}

export function stringOption(context: CommandContext, name: string): string | undefined {
  const value = context.values[name]
  return typeof value === 'string' ? value : undefined
}

export function listOption(context: CommandContext, name: string): string[] {
  const value = context.values[name]
  return Array.isArray(value) ? (value as string[]) : typeof value === 'string' ? [value] : []
}

export function integerOption(context: CommandContext, name: string): number | undefined {
  const text = stringOption(context, name)
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new UsageError(`--${name} must be a whole number of 0 or more, not '${text}'`)
  return value
}
