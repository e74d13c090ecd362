// The CLI's daemon subcommands (pool, vm, sr, remote, job, run, logs, backup, restore): parse the
// arguments, call the daemon over its socket, print a table or a tree, or one JSON document with --json.
import type { ParseArgsConfig } from 'node:util'
import { DaemonClient, defaultSocketPath } from '../client/index.ts'
import { parseCommandArgs, printJson, runCommand, UsageError } from './command.ts'
import { printText } from './output.ts'
import { POOL_COMMANDS } from './pools.ts'
import { REMOTE_COMMANDS } from './remotes.ts'
import { JOB_COMMANDS } from './jobs.ts'
import { RUN_COMMANDS } from './runs.ts'
import { BACKUP_COMMANDS } from './backups.ts'

type Options = NonNullable<ParseArgsConfig['options']>

export interface CommandContext {
  positionals: string[]
  values: Record<string, string | boolean | string[] | boolean[] | undefined>
  json: boolean
  client(): Promise<DaemonClient>
  /** Prints the result: JSON as is with --json, else the human form. */
  print(value: unknown, human: () => string): void
}

export interface Subcommand {
  usage: string
  options?: Options
  /** Positional arguments expected: [minimum, maximum]. */
  arity?: [number, number]
  body(context: CommandContext): Promise<number | void>
}

/** command → subcommand ('' when the command has none, like `logs` and `restore`). */
const COMMANDS: Record<string, Record<string, Subcommand>> = {
  ...POOL_COMMANDS,
  ...REMOTE_COMMANDS,
  ...JOB_COMMANDS,
  ...RUN_COMMANDS,
  ...BACKUP_COMMANDS,
}

const COMMON: Options = { json: { type: 'boolean' }, socket: { type: 'string' }, help: { type: 'boolean', short: 'h' } }

export async function main(command: string, args: string[]): Promise<void> {
  const group = COMMANDS[command]!
  const direct = group[''] !== undefined
  const name = direct ? '' : (args[0] ?? '')
  const subcommand = group[name]
  const groupUsage = Object.values(group).map(s => `usage: ${s.usage}`).join('\n')
  if (subcommand === undefined) {
    await runCommand(groupUsage, async () => {
      if (name === '--help' || name === '-h' || name === 'help') {
        process.stdout.write(groupUsage + '\n')
        return
      }
      throw new UsageError(name === '' ? `'lifeboat ${command}' needs a subcommand` : `unknown subcommand '${command} ${name}'`)
    })
    return
  }
  const usage = `usage: ${subcommand.usage}`
  await runCommand(usage, async () => {
    const { values, positionals } = parseCommandArgs(direct ? args : args.slice(1), { ...COMMON, ...subcommand.options })
    if (values.help === true) {
      process.stdout.write(usage + '\n')
      return
    }
    const [min, max] = subcommand.arity ?? [0, 0]
    if (positionals.length < min) throw new UsageError('missing argument')
    if (positionals.length > max) throw new UsageError(`unexpected argument '${positionals[max]}'`)
    const json = values.json === true
    let client: DaemonClient | undefined
    try {
      return await subcommand.body({
        positionals,
        values: values as CommandContext['values'],
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
  if (!Number.isInteger(value) || value < 0) throw new UsageError(`--${name} must be a whole number, not '${text}'`)
  return value
}
