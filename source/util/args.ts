// Command lines: one table per command (its positionals and options, each with its help) from which both
// the parser and the help are made, so that `--help` cannot disagree with what is accepted.
import { LifeboatError } from './errors.ts'

export interface OptionSpec {
  /** The value's placeholder (`N`, `PATH`); absent for a flag. */
  value?: string
  /** Given several times, each value kept. */
  multiple?: boolean
  short?: string
  required?: boolean
  help: string
}

export interface CommandSpec {
  /** The words after `lifeboat` (`job run`). */
  name: string
  /** Their names in order; an optional one is written `[RUNID]`, a last one that takes several `PATH...`. */
  positionals?: string[]
  /** One short line (the overview lists every command with it). */
  summary: string
  /** More for `--help`. */
  notes?: string
  options?: Record<string, OptionSpec>
}

export type OptionValues = Record<string, string | string[] | boolean | undefined>

/** A mistake in the command line itself: printed with the usage, exit code 2. */
export class UsageError extends LifeboatError {
  constructor(message: string) {
    super('USAGE', message)
  }
}

const HELP: OptionSpec = { short: 'h', help: 'this help' }

/** `lifeboat job run`; `lifeboat` alone for the TUI. */
function commandLine(spec: CommandSpec): string {
  return spec.name === '' ? 'lifeboat' : `lifeboat ${spec.name}`
}

/** The options, positionals and `--help` of `args` for `spec`; every mistake is a UsageError in our words. */
export function parseCommandLine(spec: CommandSpec, args: string[]): { help: boolean; values: OptionValues; positionals: string[] } {
  const options = spec.options ?? {}
  if (args.some(arg => arg === '--help' || arg === '-h')) return { help: true, values: {}, positionals: [] }
  const shorts = new Map<string, string>(Object.entries(options).flatMap(([name, option]) => (option.short === undefined ? [] : [[`-${option.short}`, name]])))
  const values: OptionValues = {}
  const positionals: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    if (arg === '--') {
      positionals.push(...args.slice(i + 1))
      break
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg)
      continue
    }
    const equals = arg.indexOf('=')
    const name = arg.startsWith('--') ? arg.slice(2, equals === -1 ? undefined : equals) : shorts.get(arg)
    const option = name === undefined ? undefined : options[name]
    if (name === undefined || option === undefined) throw new UsageError(`'${commandLine(spec)}' has no option ${equals === -1 ? arg : arg.slice(0, equals)}; 'npx ${commandLine(spec)} --help' lists them`)
    let value: string | boolean = true
    if (option.value === undefined) {
      if (equals !== -1) throw new UsageError(`--${name} takes no value`)
    } else if (equals !== -1) {
      value = arg.slice(equals + 1)
    } else {
      // A value may start with '-' (`--retention -3` is a wrong number, said as such); a long option is not a value.
      const next = args[i + 1]
      if (next === undefined || next.startsWith('--')) throw new UsageError(`--${name} needs a value: --${name} ${option.value}`)
      value = next
      i++
    }
    if (option.multiple === true) values[name] = [...((values[name] as string[] | undefined) ?? []), value as string]
    else if (values[name] !== undefined) throw new UsageError(`--${name} is given twice`)
    else values[name] = value
  }
  for (const [name, option] of Object.entries(options)) {
    if (option.required === true && values[name] === undefined) throw new UsageError(`${optionWords(name, option)} is required`)
  }
  const names = spec.positionals ?? []
  const required = names.filter(name => !name.startsWith('[')).length
  if (positionals.length < required) throw new UsageError(`missing ${names[positionals.length]}`)
  const variadic = names.at(-1)?.endsWith('...') === true
  if (!variadic && positionals.length > names.length) throw new UsageError(`unexpected argument '${positionals[names.length]}'`)
  return { help: false, values, positionals }
}

function optionWords(name: string, option: OptionSpec): string {
  return `--${name}${option.value === undefined ? '' : ` ${option.value}`}${option.multiple === true ? '…' : ''}`
}

/** One line: the command, its positionals, its options (optional ones in brackets). */
export function synopsis(spec: CommandSpec): string {
  const options = Object.entries(spec.options ?? {}).map(([name, option]) => (option.required === true ? optionWords(name, option) : `[${optionWords(name, option)}]`))
  return [commandLine(spec), ...(spec.positionals ?? []), ...options].join(' ')
}

/** What `--help` prints: the synopsis, the summary and one line per option. */
export function helpText(spec: CommandSpec): string {
  const entries = [...Object.entries(spec.options ?? {}), ['help', HELP] as const].map(([name, option]) => [`${option.short === undefined ? '    ' : `-${option.short}, `}${optionWords(name, option)}`, option.help] as const)
  const width = Math.max(...entries.map(([words]) => words.length))
  return [`usage: ${synopsis(spec)}`, '', spec.summary, ...(spec.notes === undefined ? [] : [spec.notes]), '', ...entries.map(([words, help]) => `  ${words.padEnd(width)}  ${help}`)].join('\n') + '\n'
}
